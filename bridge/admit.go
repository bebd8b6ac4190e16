package bridge

import (
	"context"
	"fmt"
	"runtime/debug"
)

// Admission is an event the router is about to accept, with the
// conversation it belongs to and the legs it would be delivered to. An
// Admitter looks at it (metadata only: who, where, when, what kind) and
// either refuses the event or keeps it from some legs.
type Admission struct {
	Event        *Event
	Conversation ConversationID
	// Dests are the legs the event goes to: every leg of the
	// conversation but the source.
	Dests []Leg

	excluded map[Leg]bool
}

// Exclude keeps the event from one destination leg (the owner of that leg
// blocked the sender): the leg never receives it, and nobody is told.
func (a *Admission) Exclude(leg Leg) {
	if a.excluded == nil {
		a.excluded = make(map[Leg]bool)
	}
	a.excluded[leg] = true
}

// Excluded reports whether Exclude was called for leg.
func (a *Admission) Excluded(leg Leg) bool { return a.excluded[leg] }

// Admitter decides, before the router accepts an event, whether it may be
// bridged at all (a suspended sender, a rate limit) and to which legs
// (blocks). Admit returns nil to accept, or an error (normally a
// *RefusedError) that Submit returns to the source connector, which tells
// the sender. Admit is called for every kind, typing included, and only for
// events from legs that belong to a conversation. It must be quick: it runs
// on the submitting connector's goroutine.
type Admitter interface {
	Admit(ctx context.Context, a *Admission) error
}

// AdmitFunc adapts a function to Admitter.
type AdmitFunc func(ctx context.Context, a *Admission) error

// Admit implements Admitter.
func (f AdmitFunc) Admit(ctx context.Context, a *Admission) error { return f(ctx, a) }

// SetAdmitter installs the admission hook (the safety service). Call before
// Start; nil removes it.
func (r *Router) SetAdmitter(a Admitter) { r.admitter = a }

// admit runs the admitter for evt. It returns the legs to skip, or the
// refusal. An event from a leg of no conversation is passed through: accept
// reports ErrUnknownLeg for it.
func (r *Router) admit(ctx context.Context, evt *Event) (conv ConversationID, legs []Leg, excluded map[Leg]bool, err error) {
	var dests []Leg
	if s := r.cachedSiblings(evt.Source); s != nil {
		conv = s.conv
		dests = make([]Leg, 0, len(s.legs)-1)
		for _, l := range s.legs {
			if l != evt.Source {
				dests = append(dests, l)
			}
		}
	} else if conv, dests, err = r.readSiblings(ctx, evt.Source); err != nil {
		return "", nil, nil, err
	}
	if conv == "" || r.admitter == nil {
		return conv, dests, nil, nil
	}
	a := &Admission{Event: evt, Conversation: conv, Dests: dests}
	func() {
		defer func() {
			if p := recover(); p != nil {
				r.log.Error().Any("panic", p).Bytes("stack", debug.Stack()).Msg("Recovered panic in admitter")
				err = &RefusedError{Reason: "the bridge could not check this message; please try again later", Err: &PanicError{Value: p}}
			}
		}()
		err = r.admitter.Admit(ctx, a)
	}()
	if err != nil {
		return conv, dests, nil, err
	}
	return conv, dests, a.excluded, nil
}

// readSiblings reads the conversation of a source leg ("": none) and its
// other legs from the database, outside any transaction.
func (r *Router) readSiblings(ctx context.Context, src Leg) (conv ConversationID, dests []Leg, err error) {
	var rows interface {
		Next() bool
		Scan(...any) error
		Close() error
		Err() error
	}
	if r.stmts != nil {
		rows, err = r.stmts.query(ctx, r.stmts.siblings, src.Network, src.Chat)
	} else {
		rows, err = r.db.Query(ctx, siblingLegsQuery, src.Network, src.Chat)
	}
	if err != nil {
		return "", nil, fmt.Errorf("%w: admission: %w", ErrDatabase, err)
	}
	for rows.Next() {
		var l Leg
		if err = rows.Scan(&conv, &l.Network, &l.Chat); err != nil {
			rows.Close()
			return "", nil, fmt.Errorf("%w: admission: %w", ErrDatabase, err)
		}
		if l != src {
			dests = append(dests, l)
		}
	}
	rows.Close()
	if err = rows.Err(); err != nil {
		return "", nil, fmt.Errorf("%w: admission: %w", ErrDatabase, err)
	}
	return conv, dests, nil
}
