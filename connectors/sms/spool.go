package sms

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchboard-bridge/switchboard/internal/keyring"
)

// The spool keeps inbound webhooks the bridge could not accept because the
// database was unavailable. Twilio does not retry a webhook that failed, so
// answering 503 would lose the message: instead the signed form is
// appended to the spool, sealed (AES-256-GCM, key derived from
// identity.secret: the file holds message bodies and numbers, never in
// plaintext), synced to disk, and Twilio gets a 200. A background loop
// replays the spool in order once the database answers again; replays are
// idempotent (keywords are claimed by MessageSid, the router deduplicates
// events by MessageSid). While anything waits in the spool, new webhooks
// join it behind the older ones, so a conversation gets its messages in
// the order they came.
//
// File format: records of a 4-byte big-endian length and the sealed JSON
// of a spoolRecord. A record torn by a crash (never acknowledged to
// Twilio) is cut off when the spool is opened. During a replay the file is
// renamed to <path>.replay, so new webhooks go to a fresh <path>; a replay
// interrupted by a failure keeps the records not yet handled in
// <path>.replay, which the next replay starts with. An flock on <path>.lock
// serializes the processes that share the spool.
const (
	spoolAD = keyring.SMSSpoolAD
	// maxSpoolRecord bounds one sealed record (a webhook is at most
	// maxWebhookBody).
	maxSpoolRecord = 4*maxWebhookBody + 4096
	// spoolInterval is how often the spool is tried again while the
	// database is unavailable.
	spoolInterval = 2 * time.Second
)

// spoolRecord is one webhook kept in the spool.
type spoolRecord struct {
	// Received is when the webhook arrived (Unix ms): keywords are
	// ordered by it.
	Received int64 `json:"received"`
	// Params are the signed form fields.
	Params map[string]string `json:"params"`
}

type spool struct {
	path string
	aead *keyring.AEAD
	log  zerolog.Logger
	lock *os.File

	mu sync.Mutex // file operations within this process
	// replaying is held during a replay (one at a time).
	replaying sync.Mutex
	// n counts the records waiting (in both files).
	n atomic.Int64
}

// openSpool opens (creating its directory) the spool at path, cuts off a
// record torn by a crash, and counts what waits.
func openSpool(path string, aead *keyring.AEAD, log zerolog.Logger) (*spool, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sms: spool directory: %w", err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sms: spool lock: %w", err)
	}
	s := &spool{path: path, aead: aead, log: log, lock: lock}
	err = s.locked(func() error {
		n := 0
		for _, p := range []string{s.path + ".replay", s.path} {
			frames, good, size, err := readFrames(p)
			if err != nil {
				return err
			}
			if good < size {
				s.log.Warn().Int64("bytes", size-good).Msg("Cut off the end of the SMS spool, torn by a crash (never acknowledged to Twilio)")
				if err = os.Truncate(p, good); err != nil {
					return fmt.Errorf("sms: spool: %w", err)
				}
			}
			n += len(frames)
		}
		s.n.Store(int64(n))
		return nil
	})
	if err != nil {
		_ = lock.Close()
		return nil, err
	}
	return s, nil
}

func (s *spool) close() {
	if s != nil && s.lock != nil {
		_ = s.lock.Close()
	}
}

// locked runs fn holding the spool's lock in this process and across
// processes.
func (s *spool) locked(fn func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := syscall.Flock(int(s.lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("sms: spool lock: %w", err)
	}
	defer syscall.Flock(int(s.lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing unlocks too
	return fn()
}

// pending tells whether webhooks wait in the spool.
func (s *spool) pending() bool { return s.n.Load() > 0 }

// append seals rec and adds it to the spool, synced to disk before it
// returns.
func (s *spool) append(rec *spoolRecord) error {
	plain, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	sealed := s.aead.Seal(plain, []byte(spoolAD))
	frame := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(sealed)), uint32(len(sealed)))
	frame = append(frame, sealed...)
	return s.locked(func() error {
		f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("sms: spool: %w", err)
		}
		st, err := f.Stat()
		if err == nil {
			if _, err = f.Write(frame); err == nil {
				err = f.Sync()
			}
			if err != nil {
				_ = f.Truncate(st.Size()) // leave no torn record behind
			}
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("sms: spool: %w", err)
		}
		s.n.Add(1)
		return nil
	})
}

// readFrames reads the records of a spool file (none if it does not
// exist). good is the length of the whole records, size the file's.
func readFrames(path string) (frames [][]byte, good, size int64, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, 0, nil
	} else if err != nil {
		return nil, 0, 0, fmt.Errorf("sms: spool: %w", err)
	}
	rest := data
	for len(rest) >= 4 {
		n := binary.BigEndian.Uint32(rest)
		if n == 0 || n > maxSpoolRecord || int64(n) > int64(len(rest)-4) {
			break
		}
		frames = append(frames, rest[4:4+n])
		rest = rest[4+n:]
	}
	return frames, int64(len(data) - len(rest)), int64(len(data)), nil
}

func writeFrames(path string, frames [][]byte) error {
	var buf bytes.Buffer
	for _, f := range frames {
		buf.Write(binary.BigEndian.AppendUint32(nil, uint32(len(f))))
		buf.Write(f)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(buf.Bytes())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// recount sets n from the files (after a replay).
func (s *spool) recount() {
	_ = s.locked(func() error {
		n := 0
		for _, p := range []string{s.path + ".replay", s.path} {
			frames, _, _, err := readFrames(p)
			if err != nil {
				return err
			}
			n += len(frames)
		}
		s.n.Store(int64(n))
		return nil
	})
}

// SetSpool makes the connector keep inbound webhooks it cannot accept
// while the database is unavailable in a sealed spool file at path (see
// the package documentation), replayed once the database is back. Call
// before Start. Without a spool such a webhook is answered 503 and, as
// Twilio does not retry, lost.
func (c *Connector) SetSpool(path string) { c.spoolPath = path }

// keep puts a webhook in the spool and answers Twilio 200; if even that
// fails, 503.
func (c *Connector) keep(w http.ResponseWriter, form *WebhookForm, received time.Time, log zerolog.Logger) {
	if err := c.spool.append(&spoolRecord{Received: received.UnixMilli(), Params: form.Params}); err != nil {
		log.Error().Err(err).Msg("Failed to keep inbound SMS in the spool; Twilio will not retry it")
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	c.metrics.messages.WithLabelValues("in", "spooled").Inc()
	writeTwiML(w)
	select {
	case c.spoolKick <- struct{}{}:
	default:
	}
}

// spoolLoop replays the spool when kicked and every spoolInterval while
// anything waits.
func (c *Connector) spoolLoop(ctx context.Context) {
	defer c.bg.Done()
	tick := time.NewTicker(spoolInterval)
	defer tick.Stop()
	for {
		if c.spool.pending() {
			c.replaySpool(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-c.spoolKick:
		}
	}
}

// replaySpool handles what waits in the spool, in order, until it is
// empty or a webhook still cannot be accepted.
func (c *Connector) replaySpool(ctx context.Context) {
	s := c.spool
	s.replaying.Lock()
	defer s.replaying.Unlock()
	defer s.recount()
	replay := s.path + ".replay"
	for ctx.Err() == nil {
		var frames [][]byte
		found := false
		err := s.locked(func() error {
			if _, err := os.Stat(replay); errors.Is(err, fs.ErrNotExist) {
				// Take what waits; new webhooks start a fresh file.
				if err = os.Rename(s.path, replay); errors.Is(err, fs.ErrNotExist) {
					return nil
				} else if err != nil {
					return err
				}
			}
			found = true
			var err error
			frames, _, _, err = readFrames(replay)
			return err
		})
		if err != nil {
			c.log.Error().Err(err).Msg("Failed to read the SMS spool")
			return
		} else if !found {
			return
		}
		for i, frame := range frames {
			if err = c.replayRecord(ctx, frame); err != nil {
				c.log.Warn().Err(err).Int("waiting", len(frames)-i).Msg("Inbound SMS still cannot be accepted; kept in the spool")
				if i > 0 {
					if err = s.locked(func() error { return writeFrames(replay, frames[i:]) }); err != nil {
						c.log.Error().Err(err).Msg("Failed to rewrite the SMS spool (its handled webhooks will be handled again, harmlessly)")
					}
				}
				return
			}
		}
		if err = s.locked(func() error { return os.Remove(replay) }); err != nil {
			c.log.Error().Err(err).Msg("Failed to remove the replayed SMS spool")
			return
		}
	}
}

// replayRecord handles one spooled webhook. It returns an error only when
// the webhook should be tried again later; one that can never be handled
// is dropped with a log line (without its content).
func (c *Connector) replayRecord(ctx context.Context, frame []byte) error {
	plain, err := c.spool.aead.Open(frame, []byte(spoolAD))
	if err != nil {
		c.log.Error().Err(err).Msg("Dropped a spooled inbound SMS that cannot be decrypted (identity.secret changed?)")
		c.metrics.messages.WithLabelValues("in", "spool_lost").Inc()
		return nil
	}
	var rec spoolRecord
	if err = json.Unmarshal(plain, &rec); err != nil {
		c.log.Error().Msg("Dropped a corrupt spooled inbound SMS")
		c.metrics.messages.WithLabelValues("in", "spool_lost").Inc()
		return nil
	}
	values := url.Values{}
	for k, v := range rec.Params {
		values.Set(k, v)
	}
	form, err := ParseWebhookForm([]byte(values.Encode()))
	if err != nil {
		c.log.Error().Err(err).Msg("Dropped a malformed spooled inbound SMS")
		c.metrics.messages.WithLabelValues("in", "spool_lost").Inc()
		return nil
	}
	reply, err := c.processIncoming(ctx, form, time.UnixMilli(rec.Received))
	if err != nil {
		return err
	}
	c.metrics.messages.WithLabelValues("in", "replayed").Inc()
	c.log.Info().Str("message_sid", form.MessageSID).Msg("Accepted an inbound SMS kept in the spool")
	if reply != "" {
		// The webhook was answered long ago: the reply goes by the API,
		// from the number the contact wrote to.
		if err = c.sendSystem(ctx, form.From, form.To, reply); err != nil {
			c.log.Warn().Err(err).Str("message_sid", form.MessageSID).Msg("Could not send the automatic reply to a spooled inbound SMS")
		}
	}
	return nil
}
