package matrix

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
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
	cryptoLeaseHolderQuery  = `SELECT holder FROM sb_matrix_crypto_lease WHERE name=$1`
	cryptoLeaseStealQuery   = `UPDATE sb_matrix_crypto_lease SET holder=$2, lease_until=$3 WHERE name=$1 AND holder=$4`
)

// hostTag names this machine in lease holder IDs (a short hash of the
// host name, so the database does not name hosts).
func hostTag() string {
	name, _ := os.Hostname()
	sum := sha256.Sum256([]byte("switchboard-host:" + name))
	return hex.EncodeToString(sum[:4])
}

// processToken tells this OS process from an earlier one that had the
// same process ID (a container restarted as PID 1).
var processToken = func() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}()

// holderDead reports whether a lease holder ID names a process of an
// earlier run on this machine that no longer runs: the same host, and a
// process ID that is gone, or that is this very process's but with
// another process token. Holders on other machines are never judged
// dead; their lease expires instead.
func holderDead(holder, self string) bool {
	theirs := strings.Split(holder, "_")
	ours := strings.Split(self, "_")
	if len(theirs) != 5 || len(ours) != 5 || theirs[0] != "m" || theirs[1] != ours[1] {
		return false
	}
	pid, err := strconv.Atoi(theirs[2])
	if err != nil || pid <= 0 {
		return false
	}
	if theirs[2] == ours[2] {
		return theirs[3] != ours[3]
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// leaseHolder returns this process's holder ID, made on first use.
func (c *Connector) leaseHolder() string {
	c.cs.leaseMu.Lock()
	defer c.cs.leaseMu.Unlock()
	if c.cs.holder == "" {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		c.cs.holder = "m_" + hostTag() + "_" + strconv.Itoa(os.Getpid()) + "_" + processToken + "_" + hex.EncodeToString(b)
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
	owned, err := c.execOne(ctx, "bot device lease", cryptoLeaseQuery, cryptoLeaseName, holder, ms(until), ms(now))
	if err != nil {
		return false, err
	}
	if !owned {
		// A process of an earlier run on this machine that was killed
		// holds it: take it over now rather than after its lease expires
		// (a restarted bridge could not encrypt meanwhile).
		if owned, err = c.takeDeadLease(ctx, holder, until); err != nil {
			return false, err
		}
	}
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

// takeDeadLease takes the lease from a holder that holderDead judges gone.
func (c *Connector) takeDeadLease(ctx context.Context, self string, until time.Time) (bool, error) {
	var current string
	err := c.db.QueryRow(ctx, cryptoLeaseHolderQuery, cryptoLeaseName).Scan(&current)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("%w: bot device lease: %w", ErrDatabase, err)
	}
	if !holderDead(current, self) {
		return false, nil
	}
	took, err := c.execOne(ctx, "bot device lease", cryptoLeaseStealQuery, cryptoLeaseName, self, ms(until), current)
	if took {
		c.log.Info().Msg("Took over the bot's encryption device from a process of an earlier run that is gone")
	}
	return took, err
}
