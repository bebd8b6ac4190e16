package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// bookkeeper is a connector that records what it sent through
// Delivery.OnCommit, as the SMS connector records MessageSids.
type bookkeeper struct {
	*bridgetest.Loopback
	db   func() *bridge.Router
	fail bool

	mu        sync.Mutex
	committed []error
}

func (b *bookkeeper) SendMessage(ctx context.Context, d *bridge.Delivery) (bridge.RemoteID, error) {
	remote, err := b.Loopback.SendMessage(ctx, d)
	if err != nil {
		return remote, err
	}
	registered := d.OnCommit(func(ctx context.Context) error {
		if b.fail {
			return errors.New("bookkeeping refused")
		}
		_, err := b.db().DB().Exec(ctx, `INSERT INTO test_books (remote_id) VALUES ($1)`, string(remote))
		return err
	}, func(err error) {
		b.mu.Lock()
		b.committed = append(b.committed, err)
		b.mu.Unlock()
	})
	if !registered {
		return "", errors.New("OnCommit refused a routed delivery")
	}
	return remote, nil
}

func (b *bookkeeper) outcomes() []error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]error(nil), b.committed...)
}

// TestOnCommitRidesTheFinishingCommit: a connector's bookkeeping runs in
// the commit that records the delivery as finished: after it, the row and
// the finished delivery are both there. Bookkeeping that fails cannot make
// the router deliver again: the delivery is recorded without it and the
// connector is told.
func TestOnCommitRidesTheFinishingCommit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		for _, fail := range []bool{false, true} {
			var h *harness
			c := &bookkeeper{Loopback: bridgetest.NewLoopback(netC), db: func() *bridge.Router { return h.router }, fail: fail}
			h = startHarness(t, dbo, withConnector(c))
			ctx := context.Background()
			_, err := h.db.Exec(ctx, `CREATE TABLE IF NOT EXISTS test_books (remote_id TEXT)`)
			require.NoError(t, err)
			_, err = h.db.Exec(ctx, `DELETE FROM test_books`)
			require.NoError(t, err)
			room := fmt.Sprintf("room-%v", fail)
			h.conversation(legA(room), bridge.Leg{Network: netC, Chat: bridge.ChatID("chat-" + room)})
			require.NoError(t, h.a.Receive(ctx, text(room, "$1", "one")))
			require.NoError(t, h.a.Receive(ctx, text(room, "$2", "two")))
			c.WaitSent(2, 5*time.Second)
			waitQueueEmpty(t, h.router)
			require.Eventually(t, func() bool { return len(c.outcomes()) == 2 }, 5*time.Second, 10*time.Millisecond)
			var books int
			require.NoError(t, h.db.QueryRow(ctx, `SELECT COUNT(*) FROM test_books`).Scan(&books))
			if fail {
				assert.Zero(t, books)
				for _, err := range c.outcomes() {
					assert.Error(t, err, "the connector is told its bookkeeping was not committed")
				}
			} else {
				assert.Equal(t, 2, books)
				assert.Equal(t, []error{nil, nil}, c.outcomes())
			}
			time.Sleep(300 * time.Millisecond)
			assert.Len(t, c.Sent(), 2, "delivered once each")
			h.stop()
		}
	})
}

// TestOnCommitWithoutRouter: a Delivery built by hand registers nothing.
func TestOnCommitWithoutRouter(t *testing.T) {
	d := &bridge.Delivery{}
	assert.False(t, d.OnCommit(func(context.Context) error { return nil }, nil))
}
