package waserver

import (
	"context"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types/events"
)

// Attach points a whatsmeow client at this server: its websocket (before
// and after login) and media requests go through HTTPClient. The
// certificate root must be set too (whatsmeow.WACertPubKey = RootKey()).
func (s *Server) Attach(cli *whatsmeow.Client) {
	h := s.HTTPClient()
	cli.SetPreLoginHTTPClient(h)
	cli.SetWebsocketHTTPClient(h)
	cli.SetMediaHTTPClient(h)
}

// Pair links an unpaired whatsmeow client to the account with that
// number, the server playing the phone that scans its first QR code, and
// waits until the client is logged in and connected. The client is
// attached to the server first.
func (s *Server) Pair(ctx context.Context, cli *whatsmeow.Client, phone string) error {
	s.Attach(cli)
	connected := make(chan struct{}, 1)
	hid := cli.AddEventHandler(func(evt any) {
		if _, ok := evt.(*events.Connected); ok {
			select {
			case connected <- struct{}{}:
			default:
			}
		}
	})
	defer cli.RemoveEventHandler(hid)
	qr, err := cli.GetQRChannel(ctx)
	if err != nil {
		return errf("qr channel: %w", err)
	}
	if err = cli.Connect(); err != nil {
		return errf("connect: %w", err)
	}
	for item := range qr {
		switch item.Event {
		case whatsmeow.QRChannelEventCode:
			if err = s.ScanQR(item.Code, phone); err != nil {
				return err
			}
		case whatsmeow.QRChannelSuccess.Event:
			select {
			case <-connected:
				return nil
			case <-time.After(15 * time.Second):
				return errf("paired client did not log in")
			case <-ctx.Done():
				return ctx.Err()
			}
		default:
			return errf("pairing ended with %s: %v", item.Event, item.Error)
		}
	}
	return errf("QR channel closed")
}
