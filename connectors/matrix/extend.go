package matrix

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// CommandRequest is a bot command handed to a handler installed with
// SetCommandHandler. The command's name, permission level and argument
// syntax were already checked against the command table.
type CommandRequest struct {
	// User sent the command; Level is their permission level (relay,
	// user or admin).
	User  id.UserID
	Level string
	// Room is where the command was sent (a DM with the bot, or a bridged
	// room with the "!sb " prefix); Event is the command's event ID.
	Room  id.RoomID
	Event id.EventID
	// Name is the command in lower case; Args are its arguments as typed.
	Name string
	Args []string
}

// IsAdmin reports whether the sender is a bridge admin.
func (r *CommandRequest) IsAdmin() bool { return rank(r.Level) >= levelAdmin }

// CommandFunc answers a command with the text of the bot's notice. It must
// never return "" and never include a phone number the user did not type
// (answers are passed through RedactPhoneNumbers anyway).
type CommandFunc func(ctx context.Context, req *CommandRequest) string

// WhoamiFunc returns lines `whoami` adds for a user (a connector's logins,
// linked addresses…).
type WhoamiFunc func(ctx context.Context, user id.UserID) []string

// ErrUnknownCommand is returned by SetCommandHandler for a name that is not
// in the command table.
var ErrUnknownCommand = errors.New("unknown bot command")

// SetCommandHandler installs what a command of the table does when this
// package does not implement it itself (link, verify, login, block, admin
// …). Call before Start. A command without a handler answers "<name> is
// not available yet".
func (c *Connector) SetCommandHandler(name string, fn CommandFunc) error {
	if findCommand(name) == nil {
		return fmt.Errorf("%w: %q", ErrUnknownCommand, name)
	}
	c.mu.Lock()
	if c.handlers == nil {
		c.handlers = map[string]CommandFunc{}
	}
	c.handlers[name] = fn
	c.mu.Unlock()
	return nil
}

// AddWhoami adds lines to the answer of `whoami`. Call before Start.
func (c *Connector) AddWhoami(fn WhoamiFunc) {
	c.mu.Lock()
	c.whoami = append(c.whoami, fn)
	c.mu.Unlock()
}

func (c *Connector) commandHandler(name string) CommandFunc {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.handlers[name]
}

func (c *Connector) whoamiLines(ctx context.Context, user id.UserID) []string {
	c.mu.RLock()
	fns := append([]WhoamiFunc(nil), c.whoami...)
	c.mu.RUnlock()
	var lines []string
	for _, fn := range fns {
		lines = append(lines, fn(ctx, user)...)
	}
	return lines
}

// NotifyUser sends a notice from the bot to a user in their management room
// (a direct chat with the bot), creating one if they have none. Phone
// numbers in text are redacted.
func (c *Connector) NotifyUser(ctx context.Context, user id.UserID, text string) error {
	room, err := c.ManagementRoom(ctx, user)
	if err != nil {
		return err
	}
	c.sendNotice(ctx, room, "", RedactPhoneNumbers(text))
	return nil
}

// NotifyRoom sends a notice from the bot to any room the bot is in (an admin
// room, say). Phone numbers in text are redacted.
func (c *Connector) NotifyRoom(ctx context.Context, room id.RoomID, text string) {
	c.sendNotice(ctx, room, "", RedactPhoneNumbers(text))
}

// ManagementRoom returns the user's direct chat with the bot, creating it
// (the bot invites the user) when there is none.
func (c *Connector) ManagementRoom(ctx context.Context, user id.UserID) (id.RoomID, error) {
	if !c.isRunning() {
		return "", ErrNotStarted
	}
	var room id.RoomID
	err := c.db.QueryRow(ctx, mgmtByUserQuery, user).Scan(&room)
	if err == nil {
		return room, nil
	} else if !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	resp, err := c.as.BotIntent().CreateRoom(c.mctx(ctx), &mautrix.ReqCreateRoom{
		Visibility: "private",
		Preset:     "trusted_private_chat",
		Invite:     []id.UserID{user},
		IsDirect:   true,
	})
	if err != nil {
		return "", classify("create direct chat", err)
	}
	_ = c.as.StateStore.SetMembership(ctx, resp.RoomID, c.bot, event.MembershipJoin)
	if err = c.saveManagementRoom(ctx, resp.RoomID, user); err != nil {
		return "", err
	}
	return resp.RoomID, nil
}

// SendImage sends an image from the bot (a QR code, say) to a room,
// encrypting the file and the event when the room is encrypted. It returns
// the event ID, e.g. to redact the image later with Redact.
func (c *Connector) SendImage(ctx context.Context, room id.RoomID, data []byte, fileName, caption string) (id.EventID, error) {
	ctx = c.mctx(ctx)
	mime := http.DetectContentType(data)
	encrypted, err := c.IsEncrypted(ctx, bridge.ChatID(room))
	if err != nil {
		return "", err
	}
	upload := mautrix.ReqUploadMedia{ContentBytes: data, ContentType: mime, FileName: fileName}
	var file *event.EncryptedFileInfo
	if encrypted {
		if c.crypto == nil {
			return "", fmt.Errorf("%w: room is encrypted", ErrEncryptionUnavailable)
		}
		file = encryptMedia(data)
		upload = mautrix.ReqUploadMedia{ContentBytes: data, ContentType: "application/octet-stream"}
	}
	bot := c.as.BotIntent()
	up, err := bot.UploadMedia(ctx, upload)
	if err != nil {
		return "", classify("upload image", err)
	}
	content := &event.MessageEventContent{
		MsgType: event.MsgImage,
		Body:    fileName,
		Info:    &event.FileInfo{MimeType: mime, Size: len(data)},
	}
	if caption != "" {
		content.Body, content.FileName = RedactPhoneNumbers(caption), fileName
	}
	if file != nil {
		file.URL = up.ContentURI.CUString()
		content.File = file
	} else {
		content.URL = up.ContentURI.CUString()
	}
	typ, payload, err := c.maybeEncrypt(ctx, room, event.EventMessage, content)
	if err != nil {
		return "", err
	}
	resp, err := bot.SendMessageEvent(ctx, room, typ, payload)
	if err != nil {
		return "", classify("send image", err)
	}
	return resp.EventID, nil
}

// Redact removes one of the bot's events (an expired QR code, say).
func (c *Connector) Redact(ctx context.Context, room id.RoomID, evt id.EventID, reason string) error {
	_, err := c.as.BotIntent().RedactEvent(c.mctx(ctx), room, evt, mautrix.ReqRedact{Reason: reason})
	return classify("redact", err)
}

// commandNotAvailable is the answer of a command nobody implements.
func commandNotAvailable(name string) string {
	return strings.TrimSpace(name) + " is not available yet"
}

// NewChatGate decides whether a user may start a new conversation on a
// network (safety limits); its error text is shown to the user. It is
// called only when `start` would create a conversation, not when it
// returns to one.
type NewChatGate func(ctx context.Context, user id.UserID, network bridge.NetworkID) error

// SetNewChatGate installs the gate `start` consults. Call before Start.
func (c *Connector) SetNewChatGate(fn NewChatGate) {
	c.mu.Lock()
	c.chatGate = fn
	c.mu.Unlock()
}

func (c *Connector) allowNewChat(ctx context.Context, user id.UserID, network bridge.NetworkID) error {
	c.mu.RLock()
	gate := c.chatGate
	c.mu.RUnlock()
	if gate == nil {
		return nil
	}
	return gate(ctx, user, network)
}

// PortalOwner returns the Matrix user a portal room was created for, or ""
// when the room is not one of the bridge's portals.
func (c *Connector) PortalOwner(ctx context.Context, room id.RoomID) (id.UserID, error) {
	p, err := c.getPortal(ctx, room)
	if err != nil || p == nil {
		return "", err
	}
	return p.Owner, nil
}
