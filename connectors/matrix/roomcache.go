package matrix

import (
	"sync"
	"time"

	"maunium.net/go/mautrix/id"
)

// roomCacheTTL bounds how long a room's portal or management-room row is
// trusted from memory. This process drops an entry at once when it
// changes the row (savePortal, saveManagementRoom, forgetRoom); the TTL
// bounds how long a change made by another process sharing the database
// goes unseen here. Portal rows never change once written (insert if
// absent), so only their deletion, after the bot left the room and no
// longer receives its events, can be missed.
const roomCacheTTL = time.Minute

// maxRoomCacheEntries bounds each room cache; a full cache starts over.
const maxRoomCacheEntries = 10000

// roomCache keeps what the database said about rooms, so the per-message
// look-ups (is this room a portal, whose management room is it) do not
// cost a query for every message. The zero value is empty and usable.
type roomCache[V any] struct {
	mu sync.Mutex
	m  map[id.RoomID]roomCacheEntry[V]
	// gen counts invalidations, so a value read from the database before
	// a concurrent change is not cached after it (see begin and put).
	gen uint64
}

type roomCacheEntry[V any] struct {
	val V
	at  time.Time
}

// get returns the cached value for room, if one is fresh.
func (rc *roomCache[V]) get(room id.RoomID, now time.Time) (V, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	e, ok := rc.m[room]
	if !ok || now.Sub(e.at) >= roomCacheTTL || now.Before(e.at) {
		var zero V
		return zero, false
	}
	return e.val, true
}

// begin is called before reading a room's row from the database; its
// result goes to put with what was read.
func (rc *roomCache[V]) begin() uint64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.gen
}

// put records val for room, read from the database at now after begin
// returned gen. It records nothing when an invalidation came in between:
// the row may have changed after it was read.
func (rc *roomCache[V]) put(room id.RoomID, val V, now time.Time, gen uint64) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if gen != rc.gen {
		return
	}
	if rc.m == nil || len(rc.m) >= maxRoomCacheEntries {
		rc.m = make(map[id.RoomID]roomCacheEntry[V])
	}
	rc.m[room] = roomCacheEntry[V]{val: val, at: now}
}

// invalidate drops room's entry; call it after changing the room's row.
func (rc *roomCache[V]) invalidate(room id.RoomID) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	delete(rc.m, room)
	rc.gen++
}
