//go:build !goolm

package daemon

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/connectors/matrix"
)

// TestNoEncryptionBuildRefusesEncryption: a binary built without the
// goolm tag has no end-to-end encryption; with encryption.allow: true (the
// default) it refuses to start with one line naming the build tag, instead
// of silently never answering in encrypted rooms. With encryption.allow:
// false it starts.
func TestNoEncryptionBuildRefusesEncryption(t *testing.T) {
	require.False(t, matrix.EncryptionCompiled())
	path := writeConfig(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := Run(ctx, Options{ConfigPath: path, Env: testEnv(map[string]string{"SWITCHBOARD_ENCRYPTION_ALLOW": "true"}),
		Stdout: io.Discard, LogOutput: os.Stderr})
	require.ErrorIs(t, err, ErrNoEncryption)
	require.NotContains(t, err.Error(), "\n")
	require.Contains(t, err.Error(), "encryption.allow")
	require.Contains(t, err.Error(), "-tags goolm")
	_, statErr := os.Stat(filepath.Join(filepath.Dir(path), "switchboard.db"))
	require.True(t, os.IsNotExist(statErr), "refused before opening the database")

	d := startTestDaemon(t, path, testEnv(nil)) // encryption.allow: false
	require.False(t, strings.Contains(d.logs(t), ErrNoEncryption.Error()))
}
