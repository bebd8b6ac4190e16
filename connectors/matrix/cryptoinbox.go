package matrix

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// maxInboxBatch bounds the kept encryption traffic fed in one go.
const maxInboxBatch = 100

const (
	inboxInsertQuery = `INSERT INTO sb_matrix_crypto_inbox (traffic, received_at) VALUES ($1, $2)`
	inboxListQuery   = `SELECT seq, traffic FROM sb_matrix_crypto_inbox ORDER BY seq LIMIT $1`
	inboxDeleteQuery = `DELETE FROM sb_matrix_crypto_inbox WHERE seq=$1`
)

// keepCryptoTraffic keeps a transaction's encryption traffic for the
// process that owns the bot device (see cryptoLoop). It is committed
// before the transaction is acknowledged.
func (c *Connector) keepCryptoTraffic(ctx context.Context, t *cryptoTraffic) error {
	data, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode encryption traffic: %w", err)
	}
	if err = c.exec(ctx, inboxInsertQuery, string(data), ms(time.Now())); err != nil {
		return err
	}
	zerolog.Ctx(ctx).Debug().Int("to_device", len(t.ToDevice)).Msg("Kept encryption traffic for the process that owns the bot device")
	return nil
}

// drainCryptoInbox feeds kept encryption traffic, oldest first, to this
// process's machine and removes what was fed. It stops at the first
// traffic the machine cannot take now (it stays kept).
func (c *Connector) drainCryptoInbox(ctx context.Context) error {
	tc := c.appserviceCrypto()
	if tc == nil || !c.cs.started.Load() {
		return nil
	}
	c.inboxMu.Lock()
	defer c.inboxMu.Unlock()
	log := zerolog.Ctx(ctx)
	for {
		type row struct {
			seq     int64
			traffic string
		}
		rows, err := c.db.Query(ctx, inboxListQuery, maxInboxBatch)
		if err != nil {
			return fmt.Errorf("%w: list kept encryption traffic: %w", ErrDatabase, err)
		}
		var batch []row
		for rows.Next() {
			var r row
			if err = rows.Scan(&r.seq, &r.traffic); err != nil {
				_ = rows.Close()
				return fmt.Errorf("%w: read kept encryption traffic: %w", ErrDatabase, err)
			}
			batch = append(batch, r)
		}
		err = rows.Err()
		_ = rows.Close()
		if err != nil {
			return fmt.Errorf("%w: read kept encryption traffic: %w", ErrDatabase, err)
		}
		for _, r := range batch {
			var t cryptoTraffic
			if err = json.Unmarshal([]byte(r.traffic), &t); err != nil {
				log.Warn().Err(err).Int64("seq", r.seq).Msg("Dropping unreadable kept encryption traffic")
			} else if err = tc.feed(ctx, &t); err != nil {
				return err
			}
			if err = c.exec(ctx, inboxDeleteQuery, r.seq); err != nil {
				return err
			}
		}
		if len(batch) < maxInboxBatch {
			return nil
		}
	}
}
