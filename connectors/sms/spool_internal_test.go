package sms

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSpoolReopenCutsTornRecord: a record torn by a crash in the middle of
// an append (never acknowledged to Twilio) is cut off when the spool is
// opened again; the whole records before it survive, sealed.
func TestSpoolReopenCutsTornRecord(t *testing.T) {
	k, err := deriveKeys("test-identity-secret-0123456789abcdef")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "sub", "sms-spool")
	s, err := openSpool(path, k.spool, zerolog.Nop())
	require.NoError(t, err)
	assert.False(t, s.pending())
	for i, body := range []string{"one", "two"} {
		require.NoError(t, s.append(&spoolRecord{Received: int64(i), Params: map[string]string{"Body": body}}))
	}
	assert.True(t, s.pending())
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	good := st.Size()
	s.close()

	for _, tail := range [][]byte{{0, 0}, {0, 0, 1, 0, 'x', 'y'}, {0xff, 0xff, 0xff, 0xff}} {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		require.NoError(t, err)
		_, err = f.Write(tail)
		require.NoError(t, err)
		require.NoError(t, f.Close())

		s, err = openSpool(path, k.spool, zerolog.Nop())
		require.NoError(t, err)
		assert.EqualValues(t, 2, s.n.Load())
		st, err = os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, good, st.Size(), "torn tail cut off")
		s.close()
	}

	frames, _, _, err := readFrames(path)
	require.NoError(t, err)
	require.Len(t, frames, 2)
	for i, want := range []string{"one", "two"} {
		plain, err := k.spool.Open(frames[i], []byte(spoolAD))
		require.NoError(t, err)
		var rec spoolRecord
		require.NoError(t, json.Unmarshal(plain, &rec))
		assert.Equal(t, want, rec.Params["Body"])
		assert.EqualValues(t, i, rec.Received)
	}
	_, err = k.aead.Open(frames[0], []byte(spoolAD))
	assert.Error(t, err, "sealed with a key of its own")
}
