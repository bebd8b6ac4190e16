package matrix

import "context"

// CrossSigningRecoveryKeyForTest returns the recovery key of the bot's
// stored cross-signing identity, "" when there is none, without marking it
// shown: contract tests use it to open what the bot put into its secret
// storage.
func (c *Connector) CrossSigningRecoveryKeyForTest(ctx context.Context) (string, error) {
	row, err := c.loadCrossSigning(ctx)
	if err != nil || row == nil {
		return "", err
	}
	secrets, err := c.openCrossSigning(row)
	if err != nil {
		return "", err
	}
	return secrets.RecoveryKey(), nil
}
