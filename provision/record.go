package provision

import (
	"context"
	"sync"

	"github.com/switchboard-bridge/switchboard/connectors/matrix"
)

// StartOutcome is what a `start` run for the API did: where the chat is
// and how it is carried, or why it was refused (StartRecorder records it).
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

// recordStart records what a `start` did, for the API request running it;
// outside one (the bot) it does nothing.
func recordStart(ctx context.Context, res StartOutcome) {
	if o := outcomeOf(ctx); o != nil {
		o.mu.Lock()
		o.start = &res
		o.mu.Unlock()
	}
}

// recordError records why a command run for an API request failed (a
// `retention` the router refused); outside one it does nothing.
func recordError(ctx context.Context, err error) {
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

// StartRecorder wraps the start routing behind `start` (the daemon
// registers matrix.StartCommand(StartRecorder(starter))) so an API request
// running `start` gets the result as data; the bot is unaffected.
func StartRecorder(fn matrix.StartFunc) matrix.StartFunc {
	return func(ctx context.Context, req matrix.StartRequest) (*matrix.StartResult, error) {
		res, err := fn(ctx, req)
		out := StartOutcome{Err: err}
		if res != nil {
			out = StartOutcome{
				Room: string(res.Room), Network: string(res.Network),
				Encrypted: res.Encrypted, RoomEncrypted: res.RoomEncrypted, Native: res.Native,
				Existing: res.Existing, Group: res.Group, Undeletable: res.Undeletable, Err: err,
			}
		}
		recordStart(ctx, out)
		return res, err
	}
}

// RetentionRecorder wraps the retention behind `retention` so an API
// request learns that it failed.
func RetentionRecorder(fn matrix.RetentionFunc) matrix.RetentionFunc {
	return func(ctx context.Context, req matrix.RetentionRequest) (string, error) {
		answer, err := fn(ctx, req)
		recordError(ctx, err)
		return answer, err
	}
}
