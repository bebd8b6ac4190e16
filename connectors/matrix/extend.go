package matrix

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// NotifyUser sends a notice from the bot to a user in their management room
// (a direct chat with the bot), creating one if they have none. Phone
// numbers in text are redacted.
func (c *Connector) NotifyUser(ctx context.Context, user id.UserID, text string) error {
	room, err := c.ManagementRoom(ctx, user)
	if err != nil {
		return err
	}
	c.sendNotice(ctx, room, "", phone.Redact(text))
	return nil
}

// NotifyRoom sends a notice from the bot to any room the bot is in (an admin
// room, say). Phone numbers in text are redacted.
func (c *Connector) NotifyRoom(ctx context.Context, room id.RoomID, text string) {
	c.sendNotice(ctx, room, "", phone.Redact(text))
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
		content.Body, content.FileName = phone.Redact(caption), fileName
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

// NewChatGate decides whether a user may start a new conversation on a
// network (safety limits); its error text is shown to the user. It is
// called only when `start` would create a conversation, not when it
// returns to one.
type NewChatGate func(ctx context.Context, user id.UserID, network bridge.NetworkID) error

// PortalOwner returns the Matrix user a portal room was created for, or ""
// when the room is not one of the bridge's portals.
func (c *Connector) PortalOwner(ctx context.Context, room id.RoomID) (id.UserID, error) {
	p, err := c.getPortal(ctx, room)
	if err != nil || p == nil {
		return "", err
	}
	return p.Owner, nil
}
