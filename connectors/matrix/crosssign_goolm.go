//go:build goolm

package matrix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/olm"
	"maunium.net/go/mautrix/crypto/ssss"
	"maunium.net/go/mautrix/id"
)

var _ crossSigner = (*olmCryptor)(nil)

// crossSign runs one cross-signing attempt on the running machine (see
// crosssign.go for the cases).
func (o *olmCryptor) crossSign(ctx context.Context, password string) error {
	run := o.run.Load()
	if run == nil {
		return ErrEncryptionNotReady
	}
	c, cli, mach := o.c, run.cli, run.mach
	server, err := queryOwnCrossSigning(ctx, cli)
	if err != nil {
		return err
	}
	row, err := c.loadCrossSigning(ctx)
	if err != nil {
		return err
	}
	if row == nil {
		if server.master != "" {
			return fmt.Errorf("%w (its master key is %s); not replacing it", ErrCrossSigningForeign, server.master)
		}
		master, secrets, err := generateCrossSigning()
		if err != nil {
			return err
		}
		if row, err = c.storeCrossSigning(ctx, master, secrets); err != nil {
			return err
		}
		o.log.Info().Str("master_key", row.MasterKey).Msg("Generated the bot's cross-signing keys")
	}
	secrets, err := c.openCrossSigning(row)
	if err != nil {
		return err
	}
	if err = mach.ImportCrossSigningKeys(crypto.CrossSigningSeeds{
		MasterKey: secrets.Master, SelfSigningKey: secrets.SelfSigning, UserSigningKey: secrets.UserSigning,
	}); err != nil {
		return fmt.Errorf("%w: cross-signing seeds: %w", ErrDatabase, err)
	}
	switch server.master {
	case id.Ed25519(row.MasterKey):
	case "":
		if err = o.publishCrossSigning(ctx, mach, password); err != nil {
			return err
		}
		server.deviceSigned = false
		o.log.Info().Str("master_key", row.MasterKey).Msg("Published the bot's cross-signing keys")
	default:
		return fmt.Errorf("%w: the homeserver has %s, the database %s; not replacing it", ErrCrossSigningMismatch, server.master, row.MasterKey)
	}
	if !row.Published {
		if err = uploadSecretStorage(ctx, mach, secrets); err != nil {
			return err
		}
		if err = c.markCrossSigningPublished(ctx, row.MasterKey); err != nil {
			return err
		}
	}
	ssk := mach.CrossSigningKeys.SelfSigningKey.PublicKey()
	if server.deviceSigned && server.selfSigning == ssk {
		return nil
	}
	if err = mach.SignOwnDevice(ctx, mach.OwnIdentity()); err != nil {
		return classify("sign the bot's device", err)
	}
	o.log.Info().Stringer("device_id", cli.DeviceID).Msg("Cross-signed the bot's device")
	return nil
}

// ownCrossSigning is what the homeserver publishes of the bot's
// cross-signing identity.
type ownCrossSigning struct {
	master, selfSigning id.Ed25519
	// deviceSigned: the bot's device carries a signature by selfSigning.
	deviceSigned bool
}

// queryOwnCrossSigning asks the homeserver (/keys/query) for the bot's
// cross-signing keys and its device's signatures.
func queryOwnCrossSigning(ctx context.Context, cli *mautrix.Client) (ownCrossSigning, error) {
	var out ownCrossSigning
	resp, err := cli.QueryKeys(ctx, &mautrix.ReqQueryKeys{
		DeviceKeys: mautrix.DeviceKeysRequest{cli.UserID: mautrix.DeviceIDList{cli.DeviceID}},
	})
	if err != nil {
		return out, classify("query the bot's keys", err)
	}
	if mk, ok := resp.MasterKeys[cli.UserID]; ok {
		out.master = mk.FirstKey()
	}
	if sk, ok := resp.SelfSigningKeys[cli.UserID]; ok {
		out.selfSigning = sk.FirstKey()
	}
	if out.selfSigning != "" {
		dev := resp.DeviceKeys[cli.UserID][cli.DeviceID]
		_, out.deviceSigned = dev.Signatures[cli.UserID][id.NewKeyID(id.KeyAlgorithmEd25519, out.selfSigning.String())]
	}
	return out, nil
}

// generateCrossSigning makes a new identity: three signing keys and a
// secret-storage key. It returns the master public key and the secrets.
func generateCrossSigning() (string, *crossSigningSecrets, error) {
	var seeds [3][]byte
	var master string
	for i := range seeds {
		key, err := olm.NewPKSigning()
		if err != nil {
			return "", nil, fmt.Errorf("generate cross-signing key: %w", err)
		}
		seeds[i] = key.Seed()
		if i == 0 {
			master = key.PublicKey().String()
		}
	}
	key, err := ssss.NewKey("")
	if err != nil {
		return "", nil, fmt.Errorf("generate secret-storage key: %w", err)
	}
	meta, err := json.Marshal(key.Metadata)
	if err != nil {
		return "", nil, err
	}
	return master, &crossSigningSecrets{
		Master: seeds[0], SelfSigning: seeds[1], UserSigning: seeds[2],
		SSSSKeyID: key.ID, SSSSKey: key.Key, SSSSMeta: meta,
	}, nil
}

// publishCrossSigning uploads the machine's cross-signing public keys
// (/keys/device_signing/upload). The first request carries no
// authentication: Synapse accepts it from appservice users (and for a
// user's first keys, MSC3967). A homeserver that asks for interactive
// authentication gets the bot's password when the flow is a single
// m.login.password stage and a password was given (Dendrite v0.13.8 asks
// every user for it), m.login.dummy when that is a flow; otherwise the
// attempt fails with ErrCrossSigningAuth naming the stages asked for.
func (o *olmCryptor) publishCrossSigning(ctx context.Context, mach *crypto.OlmMachine, password string) error {
	bot := mach.Client.UserID
	localpart, _, _ := bot.Parse()
	var flows []string
	uia := func(resp *mautrix.RespUserInteractive) any {
		for _, f := range resp.Flows {
			switch {
			case slices.Equal(f.Stages, []mautrix.AuthType{mautrix.AuthTypeDummy}):
				return &mautrix.BaseAuthData{Type: mautrix.AuthTypeDummy, Session: resp.Session}
			case password != "" && slices.Equal(f.Stages, []mautrix.AuthType{mautrix.AuthTypePassword}):
				return &passwordAuth{
					BaseAuthData: mautrix.BaseAuthData{Type: mautrix.AuthTypePassword, Session: resp.Session},
					Identifier:   mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
					User:         localpart,
					Password:     password,
				}
			}
		}
		for _, f := range resp.Flows {
			stages := make([]string, len(f.Stages))
			for i, s := range f.Stages {
				stages[i] = string(s)
			}
			flows = append(flows, strings.Join(stages, "+"))
		}
		return nil
	}
	err := mach.PublishCrossSigningKeys(ctx, mach.CrossSigningKeys, uia)
	if err == nil {
		return nil
	}
	if isStatus(err, http.StatusUnauthorized) || isStatus(err, http.StatusForbidden) {
		what := "no password was given for the bot"
		if password != "" {
			what = "the bot's password was refused"
		}
		if flows != nil {
			what = "it asks for " + strings.Join(flows, " or ")
		}
		return fmt.Errorf("%w (%s): %w", ErrCrossSigningAuth, what, err)
	}
	return classify("upload cross-signing keys", err)
}

// passwordAuth is the m.login.password stage of user-interactive
// authentication, with the user both as an identifier and (for older
// servers) as user.
type passwordAuth struct {
	mautrix.BaseAuthData
	Identifier mautrix.UserIdentifier `json:"identifier"`
	User       string                 `json:"user"`
	Password   string                 `json:"password"`
}

// uploadSecretStorage puts the cross-signing private keys into the bot's
// secret storage (account data), encrypted with the recovery key, and
// makes that key the default, as clients expect.
func uploadSecretStorage(ctx context.Context, mach *crypto.OlmMachine, secrets *crossSigningSecrets) error {
	key := &ssss.Key{ID: secrets.SSSSKeyID, Key: secrets.SSSSKey, Metadata: &ssss.KeyMetadata{}}
	if err := json.Unmarshal(secrets.SSSSMeta, key.Metadata); err != nil {
		return fmt.Errorf("%w: secret-storage key metadata: %w", ErrDatabase, err)
	}
	if err := mach.SSSS.SetKeyData(ctx, key.ID, key.Metadata); err != nil {
		return classify("upload secret-storage key", err)
	}
	if err := mach.UploadCrossSigningKeysToSSSS(ctx, key, mach.CrossSigningKeys); err != nil {
		var httpErr mautrix.HTTPError
		if errors.As(err, &httpErr) {
			return classify("store cross-signing keys in secret storage", err)
		}
		return fmt.Errorf("%w: store cross-signing keys: %w", ErrDatabase, err)
	}
	if err := mach.SSSS.SetDefaultKeyID(ctx, key.ID); err != nil {
		return classify("set the default secret-storage key", err)
	}
	return nil
}
