package keyring_test

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/internal/keyring"
)

// goldenSecret is the identity.secret of the golden vectors. The expected
// values below were computed by the code as it was before the keyring
// owned every label (commit 5b21206): a change to a label, to the
// derivation or to a format makes existing databases unreadable and ghost
// IDs change, so these values must never be edited, only added to.
const goldenSecret = "golden vector secret, never a real one"

// goldenKeys is every key derived from identity.secret with HKDF-SHA256,
// by its label as a literal (not the constant: renaming a constant is
// fine, changing its text is not).
var goldenKeys = []struct{ label, key string }{
	{"switchboard queue payload v1", "096dbc2c3bdc83810aa531911f16af096f58e845343604a345e4ff79a6fcb7c6"},
	{"switchboard seen source id v1", "05f1d5da824bde8cad04e4cd8188a665a13335adb07e177927b306723eae9fb1"},
	{"switchboard identity lookup v1", "11256a8ddffa3072db1a121bd16d46ff9252c6f66c018c58e01343e5fa87b5d8"},
	{"switchboard identity encryption v1", "ff69a9a4c28586de903955c49fc797c60eea32a8801655faf666793557f110c2"},
	{"switchboard identity pseudonym v1", "4bba8ba511e911896f079b2c1a8789843e9bf852cae2259f7acd795ecec35091"},
	{"switchboard sms lookup v1", "834b652a8108b0d6b0bcb9acc704880f6e7b633b03bb95109b3efa7b1bb5a5f1"},
	{"switchboard sms chat v1", "ac0ad30624613fd87880b5fe49737a7e0df758287dc491757f65904e953078ad"},
	{"switchboard sms log v1", "c0750ead14ac15d0cd8f2b03dd2df6324f9260657ea87e6ff1e434a52821136d"},
	{"switchboard sms number encryption v1", "aff593d6957b47e15fc7c72eb36b5ef7923fd731780668ed64d8ceb28f15fb23"},
	{"switchboard sms spool encryption v1", "acef41dd060f3f0acf19690b3246e4d243b5be6a85f1dbe3c04b32e217fd6931"},
	{"switchboard whatsapp lookup v1", "10ff9667c8ff3150d5b2a730bbecca8eef69d52f7c14305349d9f84187bcb572"},
	{"switchboard whatsapp chat v1", "fae1385c135d224ff9e09c645c22296d028363e7ff715cb83664d0ecb226f7a1"},
	{"switchboard whatsapp log v1", "1832f8f2d87438d89e13417931a739c641bf61c289b50674c1f25e3221ce1d2f"},
	{"switchboard whatsapp message id v1", "96c57f88b03a6f7546d99e2872e16f55fd87847ce3f0f943bac681a7068e6d99"},
	{"switchboard whatsapp reaction v1", "44c3de55957de5d5b3b12ba249cf33c74bc7ee603b3fea32e2a8377ba6306617"},
	{"switchboard whatsapp jid encryption v1", "d53b2b90f754255f5a794cfeb8fb5c082afeffaa324cd65060f2d771ad630cc5"},
	{"switchboard whatsmeow store lookup v1", "2356db7b08afd7a081034a133d121ba7994bfd24d1270a3282d9c10b8b923802"},
	{"switchboard whatsmeow store synthetic nonce v1", "01ebba75ba7f69fe1b5ecd99aae5e4095824517d9cfbb9504196dbe961120a39"},
	{"switchboard whatsmeow store encryption v1", "cbc209c557e2ffef1ebdb4115568da7426ec77cda71e532b4d9fbef399e35c93"},
	{"switchboard matrix cross-signing encryption v1", "e2efa91d432f1eacc6bad635e4ad2b8af4d4cc422f97123d1a6ab572aad7f5d5"},
}

func TestGoldenKeys(t *testing.T) {
	for _, tc := range goldenKeys {
		t.Run(tc.label, func(t *testing.T) {
			k, err := keyring.Derive([]byte(goldenSecret), tc.label)
			require.NoError(t, err)
			require.Equal(t, tc.key, hex.EncodeToString(k))
		})
	}
}

func TestGoldenMAC(t *testing.T) {
	k, err := keyring.Derive([]byte(goldenSecret), "switchboard sms lookup v1")
	require.NoError(t, err)
	require.Equal(t, "bd7517d893bcc9f0d9ec72f3751f1146c7bd95bc5e79282ec86643ed01ae6567",
		hex.EncodeToString(keyring.MAC(k, "contact", "+14155550123")))
}

// TestGoldenSealedOpens opens a value sealed by the old code: sealing is
// randomized, so the golden value is a sealed blob, not an output.
func TestGoldenSealedOpens(t *testing.T) {
	a, err := keyring.DeriveAEAD([]byte(goldenSecret), "switchboard identity encryption v1")
	require.NoError(t, err)
	sealed, err := hex.DecodeString("84a2053ce2f8f4fdb520b55b1f76eb25802637e0fa887513aaf210abadbdc8c2617d11d88e1375da")
	require.NoError(t, err)
	plain, err := a.Open(sealed, []byte("row"))
	require.NoError(t, err)
	require.Equal(t, "+14155550123", string(plain))
}

// TestGoldenCoversEveryLabel checks every key label in labels.go has a
// golden vector above (the domains bound into MACs and seals, and the
// ghost key, have theirs in their packages and below).
func TestGoldenCoversEveryLabel(t *testing.T) {
	golden := map[string]bool{}
	for _, tc := range goldenKeys {
		golden[tc.label] = true
	}
	notKeys := map[string]bool{keyring.SMSSpoolAD: true, keyring.WhatsmeowJIDUserAD: true, keyring.MatrixGhost: true}
	for _, l := range keyring.Labels() {
		if !notKeys[l] {
			require.True(t, golden[l], "%q has no golden vector", l)
		}
	}
}

// TestGoldenGhostKey is the Matrix ghost key, derived the old way
// (HMAC-SHA256 of the secret), as commit 5b21206 derived it.
func TestGoldenGhostKey(t *testing.T) {
	require.Equal(t, "e1f8d73ceb87b6f96de4e29de52e4567cba92211d2a765e594f71bd40c359ec1",
		hex.EncodeToString(keyring.HMACKey([]byte(goldenSecret), "switchboard/matrix/ghost/v1")))
	require.Equal(t, "switchboard/matrix/ghost/v1", keyring.MatrixGhost)
}
