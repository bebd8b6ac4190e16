package matrix

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// A transaction carries more than timeline events when the registration
// asks for it: ephemeral events (MSC2409: typing, receipts, presence),
// to-device events (MSC2409, MSC4203) and, with org.matrix.msc3202, the
// bot device's one-time-key counts, its unused fallback key types and
// device-list changes (MSC3202). Synapse sends them under unstable names;
// the spec's stable names are accepted too, and win when both come.

// txnBody is a transaction as it arrives. Events are parsed one by one as
// the body is decoded (txnEvent); every other part is kept raw and parsed
// on its own. So a malformed event or part is skipped instead of failing
// the transaction (and with it every event behind it).
type txnBody struct {
	Events []txnEvent `json:"events"`

	Ephemeral        json.RawMessage `json:"ephemeral"`
	MSC2409Ephemeral json.RawMessage `json:"de.sorunome.msc2409.ephemeral"`
	ToDevice         json.RawMessage `json:"to_device"`
	MSC2409ToDevice  json.RawMessage `json:"de.sorunome.msc2409.to_device"`

	DeviceLists        json.RawMessage `json:"device_lists"`
	MSC3202DeviceLists json.RawMessage `json:"org.matrix.msc3202.device_lists"`
	OTKCount           json.RawMessage `json:"device_one_time_keys_count"`
	MSC3202OTKCount    json.RawMessage `json:"org.matrix.msc3202.device_one_time_keys_count"`
	// MSC3202OTKCounts is the name MSC3202 first gave the counts; Synapse
	// sends both.
	MSC3202OTKCounts    json.RawMessage `json:"org.matrix.msc3202.device_one_time_key_counts"`
	FallbackKeys        json.RawMessage `json:"device_unused_fallback_key_types"`
	MSC3202FallbackKeys json.RawMessage `json:"org.matrix.msc3202.device_unused_fallback_key_types"`
}

// txnEvent is one event of a transaction, parsed by parseEvent straight
// from the body (not copied out of it first): nil when it is not a Matrix
// event. Its decoding never fails, so one event cannot fail the others.
type txnEvent struct {
	evt *event.Event
}

// UnmarshalJSON parses one event (parseEvent).
func (t *txnEvent) UnmarshalJSON(raw []byte) error {
	t.evt = parseEvent(raw)
	return nil
}

// pick returns the first part that is present (not absent or null).
func pick(parts ...json.RawMessage) json.RawMessage {
	for _, p := range parts {
		if len(p) > 0 && string(p) != "null" {
			return p
		}
	}
	return nil
}

// cryptoTraffic is the bot's share of a transaction's encryption traffic:
// what the Olm machine would otherwise learn from /sync. It is also what a
// process that does not own the bot device keeps for the owner
// (cryptoinbox.go), so it is plain JSON: to-device events are Olm
// ciphertext or key requests (IDs), never a message body.
type cryptoTraffic struct {
	// ToDevice holds to-device events addressed to the bot user (the
	// machine checks the device: toBot).
	ToDevice []json.RawMessage `json:"to_device,omitempty"`
	// DeviceLists are users whose devices changed (or who left).
	DeviceLists *mautrix.DeviceLists `json:"device_lists,omitempty"`
	// OTKCounts are the bot user's one-time-key counts by device.
	OTKCounts map[id.DeviceID]mautrix.OTKCount `json:"otk_counts,omitempty"`
	// FallbackKeys are the bot user's unused fallback key types by device.
	FallbackKeys map[id.DeviceID][]id.KeyAlgorithm `json:"fallback_keys,omitempty"`
}

func (t *cryptoTraffic) empty() bool {
	return t == nil || (len(t.ToDevice) == 0 && t.DeviceLists == nil && len(t.OTKCounts) == 0 && t.FallbackKeys == nil)
}

// cryptoTrafficOf takes the bot's encryption traffic out of a transaction.
// To-device events not addressed to the bot user, and counts of other
// users, are dropped here; malformed parts are logged and skipped.
func (c *Connector) cryptoTrafficOf(ctx context.Context, body *txnBody) *cryptoTraffic {
	log := zerolog.Ctx(ctx)
	t := &cryptoTraffic{}
	if raw := pick(body.ToDevice, body.MSC2409ToDevice); raw != nil {
		var evts []json.RawMessage
		if err := json.Unmarshal(raw, &evts); err != nil {
			log.Warn().Err(err).Msg("Malformed to-device events in transaction; skipped")
		}
		for _, evt := range evts {
			var addr struct {
				ToUser   id.UserID   `json:"to_user_id"`
				ToDevice id.DeviceID `json:"to_device_id"`
			}
			if json.Unmarshal(evt, &addr) != nil || addr.ToUser != c.bot || addr.ToDevice == "" {
				log.Debug().Stringer("to_user_id", addr.ToUser).Msg("Dropping a to-device event not addressed to the bot")
				continue
			}
			t.ToDevice = append(t.ToDevice, evt)
		}
	}
	if raw := pick(body.DeviceLists, body.MSC3202DeviceLists); raw != nil {
		var dl mautrix.DeviceLists
		if err := json.Unmarshal(raw, &dl); err != nil {
			log.Warn().Err(err).Msg("Malformed device lists in transaction; skipped")
		} else if len(dl.Changed) > 0 || len(dl.Left) > 0 {
			t.DeviceLists = &dl
		}
	}
	if raw := pick(body.OTKCount, body.MSC3202OTKCount, body.MSC3202OTKCounts); raw != nil {
		var counts map[id.UserID]map[id.DeviceID]mautrix.OTKCount
		if err := json.Unmarshal(raw, &counts); err != nil {
			log.Warn().Err(err).Msg("Malformed one-time-key counts in transaction; skipped")
		} else if mine := counts[c.bot]; len(mine) > 0 {
			t.OTKCounts = mine
		}
	}
	if raw := pick(body.FallbackKeys, body.MSC3202FallbackKeys); raw != nil {
		var keys map[id.UserID]map[id.DeviceID][]id.KeyAlgorithm
		if err := json.Unmarshal(raw, &keys); err != nil {
			log.Warn().Err(err).Msg("Malformed unused fallback key types in transaction; skipped")
		} else if mine, ok := keys[c.bot]; ok {
			t.FallbackKeys = mine
			if t.FallbackKeys == nil {
				t.FallbackKeys = map[id.DeviceID][]id.KeyAlgorithm{}
			}
		}
	}
	return t
}

// transactionCryptor is a cryptor that takes encryption traffic from
// transactions (encryption.appservice) instead of /sync.
type transactionCryptor interface {
	// feed hands encryption traffic to the running machine; it fails with
	// ErrEncryptionNotReady when the machine does not run.
	feed(ctx context.Context, t *cryptoTraffic) error
	// memberChanged tells the machine about a membership change in a room
	// (a change of who may read the room invalidates its outbound session).
	memberChanged(ctx context.Context, evt *event.Event)
}

// appserviceCrypto returns the cryptor when encryption traffic comes in
// transactions (encryption.appservice), else nil.
func (c *Connector) appserviceCrypto() transactionCryptor {
	if c.crypto == nil || !c.cfg.Encryption.Appservice {
		return nil
	}
	tc, _ := c.crypto.(transactionCryptor)
	return tc
}

// handleCryptoTraffic hands a transaction's encryption traffic to the bot
// device's Olm machine before the transaction's events are handled (so an
// event encrypted with a room key of the same transaction decrypts at
// once). A process that does not own the bot device keeps it for the
// owner. Without encryption.appservice the traffic is ignored: the /sync
// loop brings the same. An error means the homeserver should retry.
func (c *Connector) handleCryptoTraffic(ctx context.Context, body *txnBody) error {
	tc := c.appserviceCrypto()
	if tc == nil {
		return nil
	}
	t := c.cryptoTrafficOf(ctx, body)
	if t.empty() {
		return nil
	}
	if !c.cs.started.Load() {
		// readyForEvents let the transaction in: another process owns
		// the device (or did a moment ago).
		return c.keepCryptoTraffic(ctx, t)
	}
	// What other processes kept comes first.
	if err := c.drainCryptoInbox(ctx); err != nil {
		return err
	}
	err := tc.feed(ctx, t)
	if err != nil && !c.cs.started.Load() {
		// The machine stopped meanwhile (the lease moved): keep it.
		return c.keepCryptoTraffic(ctx, t)
	}
	return err
}

// cryptoMemberChanged passes a member event of a transaction to the Olm
// machine, as the /sync loop does when it runs.
func (c *Connector) cryptoMemberChanged(ctx context.Context, evt *event.Event) {
	if evt.Type != event.StateMember || !c.cs.started.Load() {
		return
	}
	if tc := c.appserviceCrypto(); tc != nil {
		tc.memberChanged(ctx, evt)
	}
}

// handleEphemeral bridges a transaction's ephemeral events (MSC2409) as the
// /sync loop bridges them: typing and read receipts in portals. Presence
// is accepted and ignored: no network takes it. Events of a malformed or
// unknown kind are skipped.
func (c *Connector) handleEphemeral(ctx context.Context, body *txnBody) {
	raw := pick(body.Ephemeral, body.MSC2409Ephemeral)
	if raw == nil {
		return
	}
	log := zerolog.Ctx(ctx)
	var evts []json.RawMessage
	if err := json.Unmarshal(raw, &evts); err != nil {
		log.Warn().Err(err).Msg("Malformed ephemeral events in transaction; skipped")
		return
	}
	for i, r := range evts {
		evt, err := parseEphemeral(r)
		if err != nil {
			log.Debug().Err(err).Int("index", i).Msg("Skipping a malformed ephemeral event")
			continue
		}
		switch evt.Type {
		case event.EphemeralEventTyping:
			c.handleTyping(ctx, evt)
		case event.EphemeralEventReceipt:
			c.handleReceipt(ctx, evt)
		}
	}
}

// parseEphemeral parses an ephemeral event of a transaction. Typing and
// receipts need the room they belong to.
func parseEphemeral(raw json.RawMessage) (*event.Event, error) {
	var evt event.Event
	if err := json.Unmarshal(raw, &evt); err != nil {
		return nil, err
	}
	evt.Type.Class = event.EphemeralEventType
	evt.Mautrix.EventSource = event.SourceEphemeral
	switch evt.Type {
	case event.EphemeralEventTyping, event.EphemeralEventReceipt:
		if evt.RoomID == "" {
			return nil, fmt.Errorf("%s without room_id", evt.Type.Type)
		}
	default:
		return &evt, nil
	}
	if err := evt.Content.ParseRaw(evt.Type); err != nil {
		return nil, err
	}
	return &evt, nil
}

// noTrafficAfter is how many transactions with events, none of them
// carrying the MSC2409 fields, make the connector say that the homeserver
// does not push encryption traffic.
const noTrafficAfter = 10

// pushCheck notices a homeserver that does not push encryption traffic
// although encryption.appservice expects it. Synapse puts the MSC2409
// fields into every transaction of an appservice whose registration asks
// for them (empty lists included); Dendrite never does. Without them no
// room key ever arrives, and every encrypted message would wait for its
// key in vain.
type pushCheck struct {
	seen    atomic.Bool
	without atomic.Int32
	told    atomic.Bool
}

// checkPushes tells the log and the admins, once, when transactions keep
// coming without any of the MSC2409 fields in appservice mode.
func (c *Connector) checkPushes(ctx context.Context, body *txnBody) {
	if c.appserviceCrypto() == nil || c.pushes.seen.Load() {
		return
	}
	for _, part := range []json.RawMessage{body.Ephemeral, body.MSC2409Ephemeral, body.ToDevice, body.MSC2409ToDevice,
		body.DeviceLists, body.MSC3202DeviceLists, body.OTKCount, body.MSC3202OTKCount, body.MSC3202OTKCounts} {
		if len(part) > 0 {
			c.pushes.seen.Store(true)
			return
		}
	}
	if len(body.Events) == 0 || c.pushes.without.Add(1) < noTrafficAfter || !c.pushes.told.CompareAndSwap(false, true) {
		return
	}
	zerolog.Ctx(ctx).Warn().Int("transactions", noTrafficAfter).
		Msg("encryption.appservice is on, but the homeserver's transactions carry no to-device or ephemeral events (MSC2409): room keys cannot arrive")
	c.tellAdmins(ctx, "matrix-no-msc2409", fmt.Sprintf(
		"⚠️ encryption.appservice is on, but %d transactions from the homeserver carried no to-device or ephemeral events (MSC2409), so the bridge gets no room keys and cannot read encrypted messages. "+
			"Enable MSC2409 and MSC3202 on the homeserver (Synapse: experimental_features msc2409_to_device_messages_enabled and msc3202_transaction_extensions, and the registration from 'switchboard -g'), or set encryption.appservice: false (Dendrite).",
		noTrafficAfter))
}
