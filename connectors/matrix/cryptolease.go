package matrix

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// The bot has one Matrix device, whose Olm account and sessions live in
// the shared database. Two processes using it at once would run two /sync
// loops on one crypto store (each consuming the other's to-device
// messages, both ratcheting one Olm account), so one process at a time
// owns it: the holder of this lease, renewed every third of the lease
// (delivery.lease, as for queue lanes). A process whose holder died takes
// over once the lease has expired; a process that stops releases it.
const (
	cryptoLeaseName = "bot_device"
	// cryptoLeaseQuery takes the lease if it is free, ours or expired.
	cryptoLeaseQuery = `
		INSERT INTO sb_matrix_crypto_lease (name, holder, lease_until) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET holder=excluded.holder, lease_until=excluded.lease_until
		WHERE sb_matrix_crypto_lease.holder=excluded.holder OR sb_matrix_crypto_lease.lease_until < $4`
	cryptoLeaseReleaseQuery = `DELETE FROM sb_matrix_crypto_lease WHERE name=$1 AND holder=$2`
)

// leaseHolder returns this process's holder ID, made on first use.
func (c *Connector) leaseHolder() string {
	c.cs.leaseMu.Lock()
	defer c.cs.leaseMu.Unlock()
	if c.cs.holder == "" {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		c.cs.holder = "m_" + hex.EncodeToString(b)
	}
	return c.cs.holder
}

// takeLease takes or renews the bot device's lease and reports whether
// this process holds it now. It records the answer for readyForEvents and
// Health.
func (c *Connector) takeLease(ctx context.Context) (bool, error) {
	holder := c.leaseHolder()
	now := time.Now()
	until := now.Add(c.leaseDuration())
	res, err := c.db.Exec(ctx, cryptoLeaseQuery, cryptoLeaseName, holder, ms(until), ms(now))
	if err != nil {
		return false, fmt.Errorf("%w: bot device lease: %w", ErrDatabase, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("%w: bot device lease: %w", ErrDatabase, err)
	}
	owned := n == 1
	c.cs.elsewhere.Store(!owned)
	c.cs.leaseMu.Lock()
	changed := !c.cs.leaseKnown || c.cs.leaseOwned != owned
	c.cs.leaseKnown, c.cs.leaseOwned = true, owned
	if owned {
		c.cs.leaseTill = until
	}
	c.cs.leaseMu.Unlock()
	if changed && owned {
		c.log.Info().Msg("This process owns the bot's encryption device")
	} else if changed {
		c.log.Info().Msg("Another process owns the bot's encryption device; leaving encrypted rooms to it")
	}
	return owned, nil
}

// releaseLease gives the lease up if this process holds it.
func (c *Connector) releaseLease(ctx context.Context) error {
	if c.db == nil {
		return nil
	}
	c.cs.elsewhere.Store(false)
	c.cs.leaseMu.Lock()
	c.cs.leaseKnown = false
	c.cs.leaseMu.Unlock()
	return c.exec(ctx, cryptoLeaseReleaseQuery, cryptoLeaseName, c.leaseHolder())
}
