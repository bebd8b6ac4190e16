package whatsapp

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"testing"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// testPNG is a small real PNG image.
func testPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 4, 3))
	for x := range 4 {
		img.Set(x, 1, color.RGBA{R: 200, A: 255})
	}
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

// An image and a document cross both ways: each side's whatsmeow
// encrypts the file, the server's media host stores only ciphertext, and
// the other side downloads and decrypts it whole.
func TestServerMedia(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		e := newSrvEnv(t, dbo)
		own := e.loginQR(alice, aliceNumber).ToNonAD()
		carol := e.newContact(contactNumber, "Carol")
		pic := testPNG(t)
		doc := []byte("%PDF-1.4 the quarterly report, page one of one")

		// WhatsApp -> Matrix.
		up, err := carol.cli.Upload(e.ctx, pic, whatsmeow.MediaImage)
		require.NoError(t, err)
		_, err = carol.cli.SendMessage(e.ctx, own, &waE2E.Message{ImageMessage: &waE2E.ImageMessage{
			URL: proto.String(up.URL), DirectPath: proto.String(up.DirectPath), MediaKey: up.MediaKey, Mimetype: proto.String("image/png"),
			FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: proto.Uint64(up.FileLength), Caption: proto.String("a picture"),
			Width: proto.Uint32(4), Height: proto.Uint32(3),
		}})
		require.NoError(t, err)
		up, err = carol.cli.Upload(e.ctx, doc, whatsmeow.MediaDocument)
		require.NoError(t, err)
		_, err = carol.cli.SendMessage(e.ctx, own, &waE2E.Message{DocumentMessage: &waE2E.DocumentMessage{
			URL: proto.String(up.URL), DirectPath: proto.String(up.DirectPath), MediaKey: up.MediaKey, Mimetype: proto.String("application/pdf"),
			FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: proto.Uint64(up.FileLength), FileName: proto.String("report.pdf"),
		}})
		require.NoError(t, err)
		sent := e.waitSent(2)
		require.Equal(t, bridge.MsgImage, sent[0].Delivery.Event.Content.Type)
		require.Equal(t, pic, sent[0].Media, "the image, decrypted")
		require.Equal(t, bridge.MsgFile, sent[1].Delivery.Event.Content.Type)
		require.Equal(t, "report.pdf", sent[1].Delivery.Event.Content.Media.FileName)
		require.Equal(t, doc, sent[1].Media, "the document, decrypted")
		mxLeg := e.matrixLeg(sent[0].Delivery.Event.Source.Chat)

		// Matrix -> WhatsApp.
		e.mx.PutMedia("mxc://example.org/pic", pic)
		e.mx.PutMedia("mxc://example.org/doc", doc)
		for _, evt := range []*bridge.Event{
			{Kind: bridge.KindMessage, SourceID: "$img", Content: &bridge.Content{Type: bridge.MsgImage, Body: "from matrix",
				Media: &bridge.Media{Ref: "mxc://example.org/pic", MimeType: "image/png", FileName: "pic.png", Width: 4, Height: 3}}},
			{Kind: bridge.KindMessage, SourceID: "$doc", Content: &bridge.Content{Type: bridge.MsgFile, Body: "notes.pdf",
				Media: &bridge.Media{Ref: "mxc://example.org/doc", MimeType: "application/pdf", FileName: "notes.pdf"}}},
		} {
			evt.Source, evt.Sender = mxLeg, bridge.Sender{ID: alice, DisplayName: "Alice"}
			require.NoError(t, e.mx.Receive(e.ctx, evt))
		}
		got := carol.waitMessages(t, 2)
		img := got[0].Message.GetImageMessage()
		require.NotNil(t, img)
		data, err := carol.cli.Download(e.ctx, img)
		require.NoError(t, err)
		require.Equal(t, pic, data)
		file := got[1].Message.GetDocumentMessage()
		require.NotNil(t, file)
		require.Equal(t, "notes.pdf", file.GetFileName())
		data, err = carol.cli.Download(e.ctx, file)
		require.NoError(t, err)
		require.Equal(t, doc, data)

		stored := e.srv.Media()
		require.Len(t, stored, 4)
		for _, blob := range stored {
			require.False(t, bytes.Contains(blob, doc[:20]), "the server holds ciphertext only")
			require.False(t, bytes.Contains(blob, pic[8:24]), "the server holds ciphertext only")
		}
	})
}
