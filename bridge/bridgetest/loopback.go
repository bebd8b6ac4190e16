// Package bridgetest holds the router's test helpers for every package's
// tests. Loopback is an in-memory connector: it records what the router
// delivers to it, lets a test inject events as if they came from a
// network, and can be told to fail or panic. It implements every optional
// capability unless built with WithoutCapabilities. Nothing here is wired
// into the daemon.
package bridgetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// Sent is one delivery the connector received from the router.
type Sent struct {
	Kind     bridge.Kind
	Chat     bridge.ChatID
	RemoteID bridge.RemoteID
	Delivery *bridge.Delivery
	// Media holds the attachment bytes fetched through Delivery.OpenMedia.
	Media []byte
	At    time.Time
}

// SendFunc may fail or panic a delivery before it is recorded; return nil to
// let it through.
type SendFunc func(d *bridge.Delivery) error

// Loopback is the loopback connector.
type Loopback struct {
	network bridge.NetworkID
	host    bridge.Host

	mu       sync.Mutex
	cond     *sync.Cond
	sent     []Sent
	statuses []bridge.StatusReport
	typing   []bool
	media    map[string][]byte
	onSend   SendFunc
	infos    []*bridge.Delivery
	next     int
	started  bool

	// Settle, when set, runs after WaitSent saw its deliveries: a test sets
	// it to wait until the router has also noted them (the loopback records
	// a send before the router stores its remote ID), so that an event
	// referring to one of them is not sent ahead of that.
	Settle func()
}

var (
	_ bridge.Connector          = (*Loopback)(nil)
	_ bridge.EditSender         = (*Loopback)(nil)
	_ bridge.ReactionSender     = (*Loopback)(nil)
	_ bridge.DeleteSender       = (*Loopback)(nil)
	_ bridge.ReadReceiptSender  = (*Loopback)(nil)
	_ bridge.TypingSender       = (*Loopback)(nil)
	_ bridge.MediaSender        = (*Loopback)(nil)
	_ bridge.MediaDownloader    = (*Loopback)(nil)
	_ bridge.ChatInfoSender     = (*Loopback)(nil)
	_ bridge.StatusReceiver     = (*Loopback)(nil)
	_ bridge.HealthReporter     = (*Loopback)(nil)
	_ bridge.EncryptionReporter = (*Loopback)(nil)
)

// New returns a loopback connector for the named network.
func NewLoopback(network bridge.NetworkID) *Loopback {
	c := &Loopback{network: network, media: make(map[string][]byte)}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// Network implements bridge.Connector.
func (c *Loopback) Network() bridge.NetworkID { return c.network }

// Init implements bridge.Connector.
func (c *Loopback) Init(host bridge.Host) { c.host = host }

// Start implements bridge.Connector.
func (c *Loopback) Start(context.Context) error {
	c.mu.Lock()
	c.started = true
	c.mu.Unlock()
	return nil
}

// Stop implements bridge.Connector.
func (c *Loopback) Stop(context.Context) error {
	c.mu.Lock()
	c.started = false
	c.mu.Unlock()
	return nil
}

// OnSend installs a hook run before each delivery is recorded.
func (c *Loopback) OnSend(fn SendFunc) {
	c.mu.Lock()
	c.onSend = fn
	c.mu.Unlock()
}

// Receive submits an event as if it arrived from this network.
func (c *Loopback) Receive(ctx context.Context, evt *bridge.Event) error {
	evt.Source.Network = c.network
	return c.host.Submit(ctx, evt)
}

// PutMedia stores attachment bytes under ref so other connectors can
// download them.
func (c *Loopback) PutMedia(ref string, data []byte) {
	c.mu.Lock()
	c.media[ref] = data
	c.mu.Unlock()
}

func (c *Loopback) record(ctx context.Context, kind bridge.Kind, d *bridge.Delivery, withMedia bool) (bridge.RemoteID, error) {
	c.mu.Lock()
	hook := c.onSend
	c.mu.Unlock()
	if hook != nil {
		if err := hook(d); err != nil {
			return "", err
		}
	}
	var data []byte
	if withMedia {
		rc, err := d.OpenMedia(ctx)
		if err != nil {
			return "", err
		}
		data, err = io.ReadAll(rc)
		_ = rc.Close()
		if err != nil {
			return "", err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next++
	id := bridge.RemoteID(string(c.network) + "-" + strconv.Itoa(c.next))
	c.sent = append(c.sent, Sent{Kind: kind, Chat: d.Chat, RemoteID: id, Delivery: d, Media: data, At: time.Now()})
	c.cond.Broadcast()
	return id, nil
}

// SendMessage implements bridge.Connector.
func (c *Loopback) SendMessage(ctx context.Context, d *bridge.Delivery) (bridge.RemoteID, error) {
	return c.record(ctx, bridge.KindMessage, d, false)
}

// SendMedia implements bridge.MediaSender.
func (c *Loopback) SendMedia(ctx context.Context, d *bridge.Delivery) (bridge.RemoteID, error) {
	return c.record(ctx, bridge.KindMessage, d, true)
}

// SendEdit implements bridge.EditSender.
func (c *Loopback) SendEdit(ctx context.Context, d *bridge.Delivery) (bridge.RemoteID, error) {
	return c.record(ctx, bridge.KindEdit, d, false)
}

// SendReaction implements bridge.ReactionSender.
func (c *Loopback) SendReaction(ctx context.Context, d *bridge.Delivery) (bridge.RemoteID, error) {
	return c.record(ctx, bridge.KindReaction, d, false)
}

// SendDelete implements bridge.DeleteSender.
func (c *Loopback) SendDelete(ctx context.Context, d *bridge.Delivery) error {
	_, err := c.record(ctx, bridge.KindDelete, d, false)
	return err
}

// SendReadReceipt implements bridge.ReadReceiptSender.
func (c *Loopback) SendReadReceipt(ctx context.Context, d *bridge.Delivery) error {
	_, err := c.record(ctx, bridge.KindReadReceipt, d, false)
	return err
}

// SendTyping implements bridge.TypingSender.
func (c *Loopback) SendTyping(_ context.Context, _ bridge.ChatID, _ bridge.Sender, typing bool) error {
	c.mu.Lock()
	c.typing = append(c.typing, typing)
	c.cond.Broadcast()
	c.mu.Unlock()
	return nil
}

// DownloadMedia implements bridge.MediaDownloader.
func (c *Loopback) DownloadMedia(_ context.Context, m *bridge.Media) (io.ReadCloser, error) {
	c.mu.Lock()
	data, ok := c.media[m.Ref]
	c.mu.Unlock()
	if !ok {
		return nil, bridge.Permanent(fmt.Errorf("loopback: no media %q", m.Ref))
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// HandleStatus implements bridge.StatusReceiver.
func (c *Loopback) HandleStatus(_ context.Context, r *bridge.StatusReport) {
	c.mu.Lock()
	c.statuses = append(c.statuses, *r)
	c.cond.Broadcast()
	c.mu.Unlock()
}

// Health implements bridge.HealthReporter.
func (c *Loopback) Health(context.Context) bridge.Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started {
		return bridge.Health{State: bridge.HealthDown, Message: "stopped"}
	}
	return bridge.Health{State: bridge.HealthOK}
}

// IsEncrypted implements bridge.EncryptionReporter; loopback chats never are.
func (c *Loopback) IsEncrypted(context.Context, bridge.ChatID) (bool, error) { return false, nil }

// Sent returns a copy of every delivery recorded so far.
func (c *Loopback) Sent() []Sent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Sent(nil), c.sent...)
}

// Statuses returns a copy of the status reports received so far.
func (c *Loopback) Statuses() []bridge.StatusReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]bridge.StatusReport(nil), c.statuses...)
}

// Typing returns the typing notifications received so far.
func (c *Loopback) Typing() []bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]bool(nil), c.typing...)
}

// WaitSent waits until at least n deliveries were recorded or the timeout
// passes, and returns what was recorded.
func (c *Loopback) WaitSent(n int, timeout time.Duration) []Sent {
	sent := waitFor(c, timeout, func() bool { return len(c.sent) >= n }, c.Sent)
	if c.Settle != nil && len(sent) >= n {
		c.Settle()
	}
	return sent
}

// WaitStatus waits until a status report matching fn arrives.
func (c *Loopback) WaitStatus(timeout time.Duration, fn func(bridge.StatusReport) bool) (bridge.StatusReport, bool) {
	var found bridge.StatusReport
	ok := false
	waitFor(c, timeout, func() bool {
		for _, s := range c.statuses {
			if fn(s) {
				found, ok = s, true
				return true
			}
		}
		return false
	}, func() []Sent { return nil })
	return found, ok
}

func waitFor[T any](c *Loopback, timeout time.Duration, cond func() bool, get func() T) T {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	c.mu.Lock()
	for !cond() && time.Now().Before(deadline) {
		c.cond.Wait()
	}
	c.mu.Unlock()
	return get()
}

// SendChatInfo implements bridge.ChatInfoSender: chat info deliveries are
// kept apart from Sent (see WaitChatInfos).
func (c *Loopback) SendChatInfo(_ context.Context, d *bridge.Delivery) error {
	c.mu.Lock()
	hook := c.onSend
	c.mu.Unlock()
	if hook != nil {
		if err := hook(d); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.infos = append(c.infos, d)
	c.cond.Broadcast()
	return nil
}

// WaitChatInfos waits until at least n chat info deliveries arrived and
// returns them all.
func (c *Loopback) WaitChatInfos(n int, timeout time.Duration) []*bridge.Delivery {
	return waitFor(c, timeout, func() bool { return len(c.infos) >= n }, func() []*bridge.Delivery {
		c.mu.Lock()
		defer c.mu.Unlock()
		return append([]*bridge.Delivery(nil), c.infos...)
	})
}
