package matrix

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/internal/keyring"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// Bridge-info state events (MSC2346): every portal carries, for each other
// network its conversation joins, one m.bridge and one uk.half-shot.bridge
// state event with the same content, keyed
// "<appservice id>://<network>/<opaque chat>". The opaque chat ID is a keyed
// hash of the network's chat ID (which for phone networks holds a number),
// and the channel's display name is the portal's name with numbers
// redacted: nothing in them is a phone number or digits of one. A network
// that leaves the conversation gets its state events emptied.

const (
	bridgeInfoVersion = "v1"
	// bridgeInfoBackfillPause spaces the start-time backfill's writes.
	bridgeInfoBackfillPause = 50 * time.Millisecond

	portalBridgeInfoQuery    = `SELECT bridge_info FROM sb_matrix_portal WHERE room_id=$1`
	portalSetBridgeInfoQuery = `UPDATE sb_matrix_portal SET bridge_info=$2 WHERE room_id=$1`
	portalsStaleInfoQuery    = `SELECT room_id FROM sb_matrix_portal WHERE bridge_info NOT LIKE 'v1:%' ORDER BY created_at LIMIT 500`
)

// LegLister is what the connector needs of the router to describe a
// portal's conversation (*bridge.Router satisfies it).
type LegLister interface {
	ConversationOf(ctx context.Context, leg bridge.Leg) (bridge.ConversationID, error)
	Legs(ctx context.Context, conv bridge.ConversationID) ([]bridge.Leg, error)
}

// SetLegLister gives the connector the router's conversations, so that
// portals created before bridge-info state existed get it on start.
// Without it only leg changes (bridge.LegObserver) write bridge info.
func (c *Connector) SetLegLister(l LegLister) {
	c.mu.Lock()
	c.legLister = l
	c.mu.Unlock()
}

var _ bridge.LegObserver = (*Connector)(nil)

// bridgeInfoMu serializes bridge-info updates (rare: a leg change, the
// start-time backfill).
var bridgeInfoMu sync.Mutex

// networkNames are the display names of the networks switchboard bridges.
var networkNames = map[bridge.NetworkID]string{
	bridge.NetworkWhatsApp: "WhatsApp",
	bridge.NetworkSMS:      "SMS",
	bridge.NetworkMatrix:   "Matrix",
}

func networkName(n bridge.NetworkID) string {
	if name, ok := networkNames[n]; ok {
		return name
	}
	return string(n)
}

// bridgeInfoRecord is what sb_matrix_portal.bridge_info holds after the
// version prefix: the content hash and the state keys written.
type bridgeInfoRecord struct {
	Hash string   `json:"h"`
	Keys []string `json:"k"`
}

// bridgeInfoEntry is one network's state key and content.
type bridgeInfoEntry struct {
	key     string
	content *event.BridgeEventContent
}

// channelOpaque is the pseudonymous channel ID of a chat on a network.
func (c *Connector) channelOpaque(leg bridge.Leg) string {
	sum := keyring.Sum(c.ghostKey, "bridge-info:"+string(leg.Network)+":"+string(leg.Chat))
	return strings.ToLower(ghostEncoding.EncodeToString(sum))[:opaqueLength]
}

// bridgeInfoEntries describes the networks of legs (other than Matrix) for
// a portal named name.
func (c *Connector) bridgeInfoEntries(legs []bridge.Leg, name string, direct bool) []bridgeInfoEntry {
	var out []bridgeInfoEntry
	for _, l := range legs {
		if l.Network == bridge.NetworkMatrix {
			continue
		}
		opaque := c.channelOpaque(l)
		section := event.BridgeInfoSection{ID: string(l.Network), DisplayName: networkName(l.Network)}
		network := section
		content := &event.BridgeEventContent{
			BridgeBot: c.bot,
			Creator:   c.bot,
			Protocol:  section,
			Network:   &network,
			Channel:   event.BridgeInfoSection{ID: opaque, DisplayName: phone.Redact(name)},
		}
		if direct {
			content.BeeperRoomType = "dm"
		}
		out = append(out, bridgeInfoEntry{
			key:     c.cfg.Appservice.ID + "://" + string(l.Network) + "/" + opaque,
			content: content,
		})
	}
	slices.SortFunc(out, func(a, b bridgeInfoEntry) int { return strings.Compare(a.key, b.key) })
	return out
}

func bridgeInfoHash(entries []bridgeInfoEntry) string {
	h := sha256.New()
	for _, e := range entries {
		data, _ := json.Marshal(e.content)
		h.Write([]byte(e.key))
		h.Write([]byte{0})
		h.Write(data)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// LegsChanged implements bridge.LegObserver: the conversation's portals get
// bridge-info state for its networks. It works in the background; a
// failure is retried on the next start.
func (c *Connector) LegsChanged(_ context.Context, _ bridge.ConversationID, legs []bridge.Leg) {
	if !c.isRunning() || c.bgCtx == nil {
		return
	}
	legs = slices.Clone(legs)
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		ctx := c.bgCtx
		for _, l := range legs {
			if l.Network != bridge.NetworkMatrix {
				continue
			}
			if err := c.updateBridgeInfo(ctx, roomIDOrEmpty(l.Chat), legs); err != nil {
				zerolog.Ctx(ctx).Warn().Err(err).Str("room_id", string(l.Chat)).Msg("Failed to update a portal's bridge info; retried on next start")
			}
		}
	}()
}

// updateBridgeInfo writes room's bridge-info state for legs when it differs
// from what was written last, and empties the state of networks that left.
func (c *Connector) updateBridgeInfo(ctx context.Context, room id.RoomID, legs []bridge.Leg) error {
	if room == "" {
		return nil
	}
	// One update at a time in this process: two leg changes in a row
	// must not both start from the record before either.
	bridgeInfoMu.Lock()
	defer bridgeInfoMu.Unlock()
	ctx = c.mctx(ctx)
	portal, err := c.getPortal(ctx, room)
	if err != nil || portal == nil {
		return err
	}
	var stored string
	err = c.db.QueryRow(ctx, portalBridgeInfoQuery, room).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	} else if err != nil {
		return fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	var prev bridgeInfoRecord
	if rest, ok := strings.CutPrefix(stored, bridgeInfoVersion+":"); ok {
		_ = json.Unmarshal([]byte(rest), &prev)
	}
	entries := c.bridgeInfoEntries(legs, c.portalName(ctx, room), portal.Direct)
	rec := bridgeInfoRecord{Hash: bridgeInfoHash(entries)}
	if rec.Hash == prev.Hash && prev.Hash != "" {
		return nil
	}
	bot := c.as.BotIntent()
	for _, e := range entries {
		rec.Keys = append(rec.Keys, e.key)
		for _, typ := range []event.Type{event.StateBridge, event.StateHalfShotBridge} {
			if _, err = bot.SendStateEvent(ctx, room, typ, e.key, e.content); err != nil {
				return classify("send bridge info", err)
			}
		}
	}
	for _, key := range prev.Keys {
		if slices.Contains(rec.Keys, key) {
			continue
		}
		// A network that left: its state emptied (state cannot be deleted).
		for _, typ := range []event.Type{event.StateBridge, event.StateHalfShotBridge} {
			if _, err = bot.SendStateEvent(ctx, room, typ, key, struct{}{}); err != nil {
				return classify("clear bridge info", err)
			}
		}
	}
	data, _ := json.Marshal(rec)
	return c.exec(ctx, portalSetBridgeInfoQuery, room, bridgeInfoVersion+":"+string(data))
}

// portalName is the room's current name, "" when it has none or the
// homeserver does not answer.
func (c *Connector) portalName(ctx context.Context, room id.RoomID) string {
	var content event.RoomNameEventContent
	if err := c.as.BotClient().StateEvent(ctx, room, event.StateRoomName, "", &content); err != nil {
		if !errors.Is(err, mautrix.MNotFound) {
			zerolog.Ctx(ctx).Debug().Err(err).Msg("Could not read a portal's name for its bridge info")
		}
		return ""
	}
	return content.Name
}

// backfillBridgeInfo gives portals that have no current bridge info (made
// before it existed, or whose write failed) their state, in the
// background after the homeserver answered.
func (c *Connector) backfillBridgeInfo(ctx context.Context) {
	c.mu.RLock()
	lister := c.legLister
	c.mu.RUnlock()
	if lister == nil {
		return
	}
	log := zerolog.Ctx(ctx)
	done := 0
	seen := make(map[id.RoomID]bool)
	// Batches until none is left, or a batch brought nothing new (every
	// write failed: the next start tries again).
	for {
		rooms, err := c.staleBridgeInfoPortals(ctx)
		if err != nil {
			log.Warn().Err(err).Msg("Failed to list portals without bridge info")
			break
		}
		progress := false
		for _, room := range rooms {
			if seen[room] {
				continue
			}
			seen[room] = true
			ok, err := c.backfillPortal(ctx, lister, room)
			if err != nil {
				log.Warn().Err(err).Stringer("room_id", room).Msg("Failed to backfill a portal's bridge info")
			}
			if ok {
				progress = true
				done++
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(bridgeInfoBackfillPause):
			}
		}
		if !progress {
			break
		}
	}
	if done > 0 {
		log.Info().Int("portals", done).Msg("Wrote bridge info to existing portals")
	}
}

// staleBridgeInfoPortals lists a batch of portals without current bridge
// info.
func (c *Connector) staleBridgeInfoPortals(ctx context.Context) ([]id.RoomID, error) {
	rows, err := c.db.Query(ctx, portalsStaleInfoQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	defer rows.Close()
	var rooms []id.RoomID
	for rows.Next() {
		var room id.RoomID
		if err = rows.Scan(&room); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrDatabase, err)
		}
		rooms = append(rooms, room)
	}
	return rooms, rows.Err()
}

// backfillPortal writes one portal's bridge info and reports whether its
// record is current now.
func (c *Connector) backfillPortal(ctx context.Context, lister LegLister, room id.RoomID) (bool, error) {
	conv, err := lister.ConversationOf(ctx, bridge.Leg{Network: bridge.NetworkMatrix, Chat: bridge.ChatID(room)})
	if errors.Is(err, bridge.ErrUnknownLeg) {
		// A portal whose conversation ended: nothing to describe (a
		// conversation it joins later is told through LegsChanged).
		err = c.exec(ctx, portalSetBridgeInfoQuery, room, bridgeInfoVersion+":{}")
		return err == nil, err
	} else if err != nil {
		return false, err
	}
	legs, err := lister.Legs(ctx, conv)
	if err == nil {
		err = c.updateBridgeInfo(ctx, room, legs)
	}
	return err == nil, err
}

// startBackground runs fn in the background until Stop.
func (c *Connector) startBackground(fn func(ctx context.Context)) {
	// Under c.mu with running checked: Stop clears running under c.mu
	// before it waits for c.bg, so no Add can race with that Wait (a
	// status report may arrive while the router stops).
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.running || c.bgCtx == nil {
		return
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		fn(c.bgCtx)
	}()
}
