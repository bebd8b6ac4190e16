package matrix

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// maxTransactionSize bounds the body of one transaction.
const maxTransactionSize = 64 << 20

// transactionTimeout bounds the handling of one transaction; the
// homeserver retries it if we do not answer.
const transactionTimeout = 2 * time.Minute

// AppserviceHandler returns the handler of the Matrix application service
// API (/_matrix/app/v1/...: transactions, user and room queries, ping).
// The daemon mounts it on appservice.listen. Every request must carry the
// hs_token: a request without one gets 401, a wrong one 403.
func (c *Connector) AppserviceHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /_matrix/app/v1/transactions/{txnID}", c.putTransaction)
	mux.HandleFunc("GET /_matrix/app/v1/users/{userID}", c.getUser)
	mux.HandleFunc("GET /_matrix/app/v1/rooms/{roomAlias}", c.getRoom)
	mux.HandleFunc("POST /_matrix/app/v1/ping", c.postPing)
	mux.HandleFunc("/_matrix/app/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "M_UNRECOGNIZED", "Unrecognized request")
	})
	return c.authenticate(mux)
}

// jsonContentType is the Content-Type of every answer, shared: the
// server only reads it (and copies the header when it sends it).
var jsonContentType = []string{"application/json"}

// emptyObject is what json.Encoder writes for struct{}{}.
var emptyObject = []byte("{}\n")

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// writeOK answers 200 with an empty object, as writeJSON(w, 200,
// struct{}{}) does but without encoding it: it is the answer to every
// transaction.
func writeOK(w http.ResponseWriter) {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(emptyObject)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"errcode": code, "error": msg})
}

// authenticate checks the hs_token in constant time.
func (c *Connector) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			// Homeservers before spec v1.4 sent the token as a query parameter.
			token = r.URL.Query().Get("access_token")
		}
		if token == "" {
			writeError(w, http.StatusUnauthorized, "M_UNAUTHORIZED", "Missing hs_token")
			return
		}
		if subtle.ConstantTimeCompare([]byte(token), c.hsToken) != 1 {
			writeError(w, http.StatusForbidden, "M_FORBIDDEN", "Invalid hs_token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (c *Connector) postPing(w http.ResponseWriter, _ *http.Request) {
	writeOK(w)
}

// getUser answers the homeserver's query for a user in our namespace: the
// bot and ghosts the bridge has registered exist; other IDs do not, since
// a ghost stands for a contact the bridge has seen.
func (c *Connector) getUser(w http.ResponseWriter, r *http.Request) {
	userID := id.UserID(r.PathValue("userID"))
	if userID == c.bot {
		writeOK(w)
		return
	}
	if c.isRunning() && c.IsGhost(userID) {
		if _, ok, err := c.ghostDisplayName(r.Context(), userID); err == nil && ok {
			writeOK(w)
			return
		}
	}
	writeError(w, http.StatusNotFound, "M_NOT_FOUND", "No such user")
}

// getRoom answers room alias queries: the bridge has no aliases.
func (c *Connector) getRoom(w http.ResponseWriter, _ *http.Request) {
	writeError(w, http.StatusNotFound, "M_NOT_FOUND", "No such room alias")
}

// putTransaction handles a transaction. Its events are handled (submitted
// to the router, which stores them durably) before it is acknowledged, so a
// crash in between makes the homeserver send it again. A txnId already
// handled is acknowledged without handling it again, across restarts.
//
// The answer is an error only for a passing cause of the bridge's own
// (database unavailable, encryption not started, a handler out of time),
// never for what an event is: a malformed, invalid, unknown or unreadable
// event is logged (IDs only) and skipped, so no single event can make the
// homeserver retry one transaction forever while every later event waits
// behind it. An event that still fails after maxEventAttempts is set
// aside and the admins are told. Handlers run under the request's context
// (an abandoned attempt stops) and a per-event budget.
func (c *Connector) putTransaction(w http.ResponseWriter, r *http.Request) {
	txnID := r.PathValue("txnID")
	if !c.isRunning() || c.host == nil {
		writeError(w, http.StatusServiceUnavailable, "M_UNKNOWN", "Bridge is not running")
		return
	}
	body, err := readBody(r, maxTransactionSize)
	if err != nil {
		writeError(w, http.StatusBadRequest, "M_NOT_JSON", "Failed to read body")
		return
	} else if len(body) > maxTransactionSize {
		writeError(w, http.StatusRequestEntityTooLarge, "M_TOO_LARGE", "Transaction too large")
		return
	}
	log := c.log.With().Str("txn_id", txnID).Logger()
	ctx, cancel := context.WithTimeout(c.txnContext(r.Context(), log), transactionTimeout)
	defer cancel()
	seen, err := c.txnSeen(ctx, txnID)
	if err != nil {
		log.Error().Err(err).Msg("Failed to check transaction")
		writeError(w, http.StatusServiceUnavailable, "M_UNKNOWN", "Database unavailable")
		return
	} else if seen {
		log.Debug().Msg("Ignoring replayed transaction")
		writeOK(w)
		return
	}
	// Events are parsed one by one as the body is decoded (txnEvent): one
	// that does not parse is skipped, not a reason to refuse the
	// transaction (and so everything after it). So are the other parts
	// (astxn.go).
	var txn txnBody
	if err = json.Unmarshal(body, &txn); err != nil {
		log.Warn().Err(err).Msg("Malformed transaction")
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", "Failed to parse transaction")
		return
	}
	if err = c.readyForEvents(); err != nil {
		// Nothing has run: the homeserver sends the whole transaction
		// again once the bridge is ready.
		log.Warn().Err(err).Msg("Not ready for events yet; asking the homeserver to retry")
		writeError(w, http.StatusServiceUnavailable, "M_UNKNOWN", "Bridge is starting")
		return
	}
	log.Debug().Int("events", len(txn.Events)).Msg("Handling transaction")
	c.checkPushes(ctx, &txn)
	// Room keys first, so events they unlock decrypt at once.
	if err = c.handleCryptoTraffic(ctx, &txn); err != nil {
		log.Warn().Err(err).Msg("Failed to take the transaction's encryption traffic; asking the homeserver to retry")
		writeError(w, http.StatusServiceUnavailable, "M_UNKNOWN", "Temporarily unable to handle encryption traffic")
		return
	}
	// Consecutive plain events are accepted together in one commit
	// (batch.go); the batch is flushed before any other event and before
	// the answer.
	var batch *txnBatch
	if bs, ok := c.host.(bridge.BatchSubmitter); ok && len(txn.Events) > 1 {
		batch = &txnBatch{bs: bs}
	}
	bctx := context.WithValue(ctx, batchKey{}, batch)
	for i, te := range txn.Events {
		evt := te.evt
		if evt == nil {
			log.Warn().Int("index", i).Msg("Skipping an event that is not a Matrix event")
			continue
		}
		if batch != nil && c.batchable(ctx, evt) {
			batch.current = evt
			err = c.processEvent(bctx, evt)
			batch.current = nil
			if err == nil && len(batch.outs) >= maxBatch {
				err = c.flushBatch(ctx, batch)
			}
		} else {
			if err = c.flushBatch(ctx, batch); err == nil {
				err = c.processEvent(ctx, evt)
			}
			if err == nil {
				c.cryptoMemberChanged(ctx, evt)
			}
		}
		if err != nil {
			// Events handled so far are deduplicated when the homeserver
			// sends the transaction again.
			writeError(w, http.StatusServiceUnavailable, "M_UNKNOWN", "Temporarily unable to handle event")
			return
		}
	}
	if err = c.flushBatch(ctx, batch); err != nil {
		writeError(w, http.StatusServiceUnavailable, "M_UNKNOWN", "Temporarily unable to handle event")
		return
	}
	// Typing and receipts are passing: they are not a reason to retry.
	c.handleEphemeral(ctx, &txn)
	c.markTxn(txnID)
	writeOK(w)
}

// maxBodyPrealloc bounds the buffer readBody makes ahead of the bytes
// arriving, whatever Content-Length says.
const maxBodyPrealloc = 1 << 20

// readBody reads r's body up to limit+1 bytes (so a longer one shows). A
// body whose length is known is read into one buffer of that size, not
// in the doubling chunks of io.ReadAll (a transaction of 50 events took
// eight allocations).
func readBody(r *http.Request, limit int64) ([]byte, error) {
	lr := io.LimitReader(r.Body, limit+1)
	if r.ContentLength <= 0 {
		return io.ReadAll(lr)
	}
	// One byte more, for the read that finds the end.
	buf := make([]byte, 0, min(r.ContentLength, limit, maxBodyPrealloc)+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		} else if err != nil {
			return buf, err
		}
	}
}

// txnContext returns ctx with log, made safe to hand to mautrix: what
// c.mctx(log.WithContext(ctx)) gives, with one logger and one context
// less per transaction.
func (c *Connector) txnContext(ctx context.Context, log zerolog.Logger) context.Context {
	if log.GetLevel() == zerolog.Disabled {
		// WithContext keeps a disabled logger out of ctx, and mctx then
		// picks ctx's own or the connector's.
		return c.mctx(log.WithContext(ctx))
	}
	return log.Hook(requestLogFilter{}).WithContext(ctx)
}

// wireEvent is an event as a transaction carries it. mautrix's own
// decoding (event.Event's UnmarshalJSON) also decodes the content into a
// map (Content.Raw), which prepareEvent then decodes a second time into
// its struct; for the kinds of events that carry messages nothing reads
// that map, so parseEvent leaves it out.
type wireEvent struct {
	StateKey      *string         `json:"state_key"`
	Sender        id.UserID       `json:"sender"`
	Type          event.Type      `json:"type"`
	Timestamp     int64           `json:"origin_server_ts"`
	ID            id.EventID      `json:"event_id"`
	RoomID        id.RoomID       `json:"room_id"`
	Content       json.RawMessage `json:"content"`
	Redacts       id.EventID      `json:"redacts"`
	Unsigned      *event.Unsigned `json:"unsigned"`
	PrevContent   *event.Content  `json:"prev_content"`
	ReplacesState *id.EventID     `json:"replaces_state"`
	ToUserID      id.UserID       `json:"to_user_id"`
	ToDeviceID    id.DeviceID     `json:"to_device_id"`
}

// parseEvent parses one event of a transaction; it returns nil for null,
// malformed JSON, content that is not an object, or an event without the
// fields every event has. The event is what event.Event's UnmarshalJSON
// gives, except that Content.Raw is left empty for messages, stickers,
// reactions and redactions (see wireEvent).
func parseEvent(raw json.RawMessage) *event.Event {
	// null leaves w empty: no event_id, so no event.
	var w wireEvent
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil
	}
	if w.ID == "" || w.RoomID == "" || w.Sender == "" || w.Type.Type == "" {
		return nil
	}
	evt := &event.Event{
		StateKey: w.StateKey, Sender: w.Sender, Type: w.Type, Timestamp: w.Timestamp,
		ID: w.ID, RoomID: w.RoomID, Redacts: w.Redacts,
		ToUserID: w.ToUserID, ToDeviceID: w.ToDeviceID,
	}
	if w.Content != nil {
		evt.Content.VeryRaw = w.Content
		switch w.Type {
		case event.EventMessage, event.EventSticker, event.EventReaction, event.EventRedaction:
			// Content.UnmarshalJSON refuses content that is not an object.
			if c := w.Content[0]; c != '{' && c != 'n' {
				return nil
			}
		default:
			if err := json.Unmarshal(w.Content, &evt.Content.Raw); err != nil {
				return nil
			}
		}
	}
	if w.Unsigned != nil {
		evt.Unsigned = *w.Unsigned
	}
	if w.PrevContent != nil && evt.Unsigned.PrevContent == nil {
		evt.Unsigned.PrevContent = w.PrevContent
	}
	if w.ReplacesState != nil && *w.ReplacesState != "" && evt.Unsigned.ReplacesState == "" {
		evt.Unsigned.ReplacesState = *w.ReplacesState
	}
	return evt
}

// prepareEvent classifies an event from a transaction and parses its
// content, like mautrix's own appservice does. It returns an error when
// the content of a known type does not parse: such an event is not used.
func prepareEvent(ctx context.Context, evt *event.Event) error {
	err := parseContent(evt)
	if err != nil {
		zerolog.Ctx(ctx).Debug().Err(err).Stringer("event_id", evt.ID).Str("event_type", evt.Type.Type).Msg("Failed to parse event content")
	}
	return err
}

// parseContent is prepareEvent without the log line. Content parsed
// before (by batchable) is not parsed again.
func parseContent(evt *event.Event) error {
	evt.Mautrix.ReceivedAt = time.Now()
	if evt.StateKey != nil {
		evt.Mautrix.EventSource = event.SourceTimeline
		evt.Type.Class = event.StateEventType
	} else {
		evt.Mautrix.EventSource = event.SourceTimeline
		evt.Type.Class = event.MessageEventType
	}
	err := evt.Content.ParseRaw(evt.Type)
	if err != nil && !errors.Is(err, event.ErrUnsupportedContentType) && !errors.Is(err, event.ErrContentAlreadyParsed) {
		return err
	}
	return nil
}
