package provision

import (
	"context"
	"sync"
)

// StartOutcome is what a `start` run for the API did: where the chat is
// and how it is carried, or why it was refused. The daemon wraps the
// start routing so it records one with RecordStart.
type StartOutcome struct {
	Room          string
	Network       string
	Encrypted     bool
	RoomEncrypted bool
	Native        bool
	Existing      bool
	Group         bool
	Undeletable   bool
	// Err is why the start failed (nil: it did not).
	Err error
}

// outcome collects what commands run for an API request record.
type outcome struct {
	mu    sync.Mutex
	start *StartOutcome
	err   error
}

type outcomeKey struct{}

func withOutcome(ctx context.Context) (context.Context, *outcome) {
	o := &outcome{}
	return context.WithValue(ctx, outcomeKey{}, o), o
}

func outcomeOf(ctx context.Context) *outcome {
	o, _ := ctx.Value(outcomeKey{}).(*outcome)
	return o
}

// RecordStart records what a `start` did, for the API request running it;
// outside one (the bot) it does nothing.
func RecordStart(ctx context.Context, res StartOutcome) {
	if o := outcomeOf(ctx); o != nil {
		o.mu.Lock()
		o.start = &res
		o.mu.Unlock()
	}
}

// RecordError records why a command run for an API request failed (a
// `retention` the router refused); outside one it does nothing.
func RecordError(ctx context.Context, err error) {
	if o := outcomeOf(ctx); o != nil && err != nil {
		o.mu.Lock()
		o.err = err
		o.mu.Unlock()
	}
}

func (o *outcome) get() (*StartOutcome, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.start, o.err
}
