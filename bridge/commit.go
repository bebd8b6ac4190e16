package bridge

import "context"

// commitHook is a connector's own bookkeeping for a delivery (see
// Delivery.OnCommit).
type commitHook struct {
	write     func(ctx context.Context) error
	committed func(err error)
}

// OnCommit asks the router to run write inside the transaction that
// records this delivery as finished, so that a connector's bookkeeping of
// what it sent (a provider's message ID, say) shares that commit instead
// of paying for one of its own. It must be called by the send method
// before it returns (not from a goroutine it leaves running).
//
// write runs only when the send method returns without error, after it
// returned, on the router's writer: its ctx carries the transaction
// (dbutil's DoTxn), which the connector's statements join when they use
// the router's database or a Child of it. committed (may be nil) is then
// called once with the commit's outcome. If that transaction fails, the
// delivery is recorded again without the hook (a connector's write cannot
// make the router deliver again), and committed gets the error: the
// connector should then write on its own.
//
// OnCommit returns false when no router delivers d (a Delivery built by
// hand, as in a connector's tests): nothing is registered, and the
// connector writes on its own.
func (d *Delivery) OnCommit(write func(ctx context.Context) error, committed func(err error)) bool {
	if d.router == nil || write == nil {
		return false
	}
	d.commits = append(d.commits, commitHook{write: write, committed: committed})
	return true
}

// hooksDone tells each hook the outcome of its commit.
func hooksDone(hooks []commitHook, err error) {
	for _, h := range hooks {
		if h.committed != nil {
			h.committed(err)
		}
	}
}
