package whatsapp

import (
	"context"

	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/types"
)

// whatsmeow keys what it stores by JID and Signal address, whose user part
// is a contact's phone number. The wrappers in this file stand between a
// *store.Device and whatsmeow's sqlstore and transform those keys first,
// so that no contact number reaches the database in clear:
//
//   - Signal addresses (whatsmeow_sessions.their_id,
//     whatsmeow_identity_keys.their_id, whatsmeow_sender_keys.sender_id)
//     become "hash(name):device" (storeKeys.address); the sender key's
//     chat (whatsmeow_sender_keys.chat_id) a keyed hash. They are only
//     ever looked up, never listed.
//   - JIDs that must come back (whatsmeow_lid_map.pn for GetPNForLID,
//     whatsmeow_message_secrets.sender_jid) have their user encrypted
//     deterministically (storeKeys.sealJID). whatsmeow_privacy_tokens and
//     whatsmeow_message_secrets.chat_jid use the same form although they
//     are only looked up: whatsmeow's queries join them to
//     whatsmeow_lid_map.pn in SQL, which needs one form in both.
//
// LIDs stay in clear: they are not numbers, and whatsmeow's SQL strips
// "@lid" to find them in whatsmeow_lid_map.lid.

type hashedIdentities struct {
	inner store.IdentityStore
	k     *storeKeys
}

var _ store.IdentityStore = (*hashedIdentities)(nil)

func (s *hashedIdentities) PutIdentity(ctx context.Context, address string, key [32]byte) error {
	return s.inner.PutIdentity(ctx, s.k.address(address), key)
}

// DeleteAllIdentities deletes "phone:%": the hashed name keeps the prefix.
func (s *hashedIdentities) DeleteAllIdentities(ctx context.Context, phone string) error {
	return s.inner.DeleteAllIdentities(ctx, s.k.signalName(phone))
}

func (s *hashedIdentities) DeleteIdentity(ctx context.Context, address string) error {
	return s.inner.DeleteIdentity(ctx, s.k.address(address))
}

func (s *hashedIdentities) IsTrustedIdentity(ctx context.Context, address string, key [32]byte) (bool, error) {
	return s.inner.IsTrustedIdentity(ctx, s.k.address(address), key)
}

type hashedSessions struct {
	inner store.SessionStore
	k     *storeKeys
}

var _ store.SessionStore = (*hashedSessions)(nil)

func (s *hashedSessions) GetSession(ctx context.Context, address string) ([]byte, error) {
	return s.inner.GetSession(ctx, s.k.address(address))
}

func (s *hashedSessions) HasSession(ctx context.Context, address string) (bool, error) {
	return s.inner.HasSession(ctx, s.k.address(address))
}

// GetManySessions answers under the addresses asked for: the hashes are
// mapped back through the request, never reversed.
func (s *hashedSessions) GetManySessions(ctx context.Context, addresses []string) (map[string][]byte, error) {
	if len(addresses) == 0 {
		return nil, nil
	}
	orig := make(map[string]string, len(addresses))
	hashed := make([]string, len(addresses))
	for i, addr := range addresses {
		hashed[i] = s.k.address(addr)
		orig[hashed[i]] = addr
	}
	got, err := s.inner.GetManySessions(ctx, hashed)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(addresses))
	for _, addr := range addresses {
		out[addr] = nil
	}
	for h, sess := range got {
		if addr, ok := orig[h]; ok {
			out[addr] = sess
		}
	}
	return out, nil
}

func (s *hashedSessions) PutSession(ctx context.Context, address string, session []byte) error {
	return s.inner.PutSession(ctx, s.k.address(address), session)
}

func (s *hashedSessions) PutManySessions(ctx context.Context, sessions map[string][]byte) error {
	hashed := make(map[string][]byte, len(sessions))
	for addr, sess := range sessions {
		hashed[s.k.address(addr)] = sess
	}
	return s.inner.PutManySessions(ctx, hashed)
}

// DeleteAllSessions deletes "phone:%": the hashed name keeps the prefix.
func (s *hashedSessions) DeleteAllSessions(ctx context.Context, phone string) error {
	return s.inner.DeleteAllSessions(ctx, s.k.signalName(phone))
}

func (s *hashedSessions) DeleteSession(ctx context.Context, address string) error {
	return s.inner.DeleteSession(ctx, s.k.address(address))
}

// MigratePNToLID moves sessions, identity keys and sender keys from a
// number's Signal addresses to its LID's. sqlstore does it in SQL with
// replace(their_id, pn, lid) and LIKE pn || ':%' on the names it gets from
// SignalAddressUser, so it is given JIDs whose SignalAddressUser is the
// hashed name: the rows are renamed hash to hash.
func (s *hashedSessions) MigratePNToLID(ctx context.Context, pn, lid types.JID) error {
	return s.inner.MigratePNToLID(ctx, s.k.signalJID(pn), s.k.signalJID(lid))
}

// signalJID is a JID whose SignalAddressUser is jid's hashed one (a server
// with agent 0 and no special meaning to sqlstore).
func (k *storeKeys) signalJID(jid types.JID) types.JID {
	return types.JID{User: k.signalName(jid.SignalAddressUser()), Server: types.BroadcastServer}
}

type hashedSenderKeys struct {
	inner store.SenderKeyStore
	k     *storeKeys
}

var _ store.SenderKeyStore = (*hashedSenderKeys)(nil)

// chat is the keyed hash of a sender key's group (a chat JID string: old
// groups' IDs hold their creator's number).
func (s *hashedSenderKeys) chat(group string) string { return s.k.hash("sender key chat", group) }

func (s *hashedSenderKeys) PutSenderKey(ctx context.Context, group, user string, session []byte) error {
	return s.inner.PutSenderKey(ctx, s.chat(group), s.k.address(user), session)
}

func (s *hashedSenderKeys) GetSenderKey(ctx context.Context, group, user string) ([]byte, error) {
	return s.inner.GetSenderKey(ctx, s.chat(group), s.k.address(user))
}

type sealedLIDs struct {
	inner store.LIDStore
	k     *storeKeys
}

var _ store.LIDStore = (*sealedLIDs)(nil)

func (s *sealedLIDs) PutManyLIDMappings(ctx context.Context, mappings []store.LIDMapping) error {
	sealed := make([]store.LIDMapping, len(mappings))
	for i, m := range mappings {
		sealed[i] = store.LIDMapping{LID: m.LID, PN: s.pn(m.PN)}
	}
	return s.inner.PutManyLIDMappings(ctx, sealed)
}

func (s *sealedLIDs) PutLIDMapping(ctx context.Context, lid, pn types.JID) error {
	return s.inner.PutLIDMapping(ctx, lid, s.pn(pn))
}

func (s *sealedLIDs) GetPNForLID(ctx context.Context, lid types.JID) (types.JID, error) {
	pn, err := s.inner.GetPNForLID(ctx, lid)
	if err != nil || pn.User == "" {
		return pn, err
	}
	return s.k.openJID(pn)
}

func (s *sealedLIDs) GetLIDForPN(ctx context.Context, pn types.JID) (types.JID, error) {
	return s.inner.GetLIDForPN(ctx, s.pn(pn))
}

// GetManyLIDsForPNs answers under the JIDs asked for.
func (s *sealedLIDs) GetManyLIDsForPNs(ctx context.Context, pns []types.JID) (map[types.JID]types.JID, error) {
	if len(pns) == 0 {
		return nil, nil
	}
	orig := make(map[types.JID]types.JID, len(pns))
	sealed := make([]types.JID, len(pns))
	for i, pn := range pns {
		sealed[i] = s.pn(pn)
		orig[sealed[i]] = pn
	}
	got, err := s.inner.GetManyLIDsForPNs(ctx, sealed)
	if err != nil {
		return nil, err
	}
	out := make(map[types.JID]types.JID, len(got))
	for k, lid := range got {
		if pn, ok := orig[k]; ok {
			out[pn] = lid
		}
	}
	return out, nil
}

// pn seals the user of a phone-number JID. Anything else passes unchanged:
// sqlstore rejects or skips it, as it would have.
func (s *sealedLIDs) pn(jid types.JID) types.JID {
	if jid.Server != types.DefaultUserServer {
		return jid
	}
	return s.k.sealJID(jid)
}

type sealedPrivacyTokens struct {
	inner store.PrivacyTokenStore
	k     *storeKeys
}

var _ store.PrivacyTokenStore = (*sealedPrivacyTokens)(nil)

func (s *sealedPrivacyTokens) PutPrivacyTokens(ctx context.Context, tokens ...store.PrivacyToken) error {
	sealed := make([]store.PrivacyToken, len(tokens))
	for i, t := range tokens {
		t.User = s.k.sealJID(t.User.ToNonAD())
		sealed[i] = t
	}
	return s.inner.PutPrivacyTokens(ctx, sealed...)
}

func (s *sealedPrivacyTokens) GetPrivacyToken(ctx context.Context, user types.JID) (*store.PrivacyToken, error) {
	tok, err := s.inner.GetPrivacyToken(ctx, s.k.sealJID(user.ToNonAD()))
	if tok != nil {
		tok.User = user.ToNonAD()
	}
	return tok, err
}

type sealedMsgSecrets struct {
	inner store.MsgSecretStore
	k     *storeKeys
}

var _ store.MsgSecretStore = (*sealedMsgSecrets)(nil)

func (s *sealedMsgSecrets) PutMessageSecrets(ctx context.Context, inserts []store.MessageSecretInsert) error {
	sealed := make([]store.MessageSecretInsert, len(inserts))
	for i, in := range inserts {
		in.Chat = s.k.sealJID(in.Chat.ToNonAD())
		in.Sender = s.k.sealJID(in.Sender.ToNonAD())
		sealed[i] = in
	}
	return s.inner.PutMessageSecrets(ctx, sealed)
}

func (s *sealedMsgSecrets) PutMessageSecret(ctx context.Context, chat, sender types.JID, id types.MessageID, secret []byte) error {
	return s.inner.PutMessageSecret(ctx, s.k.sealJID(chat.ToNonAD()), s.k.sealJID(sender.ToNonAD()), id, secret)
}

// GetMessageSecret also returns the sender the secret was stored under
// (its number or its LID), decrypted.
func (s *sealedMsgSecrets) GetMessageSecret(ctx context.Context, chat, sender types.JID, id types.MessageID) ([]byte, types.JID, error) {
	secret, realSender, err := s.inner.GetMessageSecret(ctx, s.k.sealJID(chat.ToNonAD()), s.k.sealJID(sender.ToNonAD()), id)
	if err != nil || secret == nil {
		return secret, realSender, err
	}
	if realSender, err = s.k.openJID(realSender); err != nil {
		return nil, types.JID{}, err
	}
	return secret, realSender, nil
}

// sealedContainer is the *store.Device's Container. whatsmeow saves a
// device through it when pairing (and when its LID or push name changes);
// sqlstore then gives a newly paired device its stores, which must be
// wrapped before whatsmeow stores the account's own LID mapping and main
// device identity right after (pair.go). Every save re-checks.
//
// It also stores the device under its JID with the user sealed, so that
// the account's own number is not in clear in whatsmeow_device.jid and
// the our_jid column of every table either (sqlstore keys a device's
// stores by the JID it was saved or loaded with). The *store.Device
// whatsmeow uses keeps its real JID: sqlstore only sees a copy.
type sealedContainer struct {
	inner store.DeviceContainer
	k     *storeKeys
}

var _ store.DeviceContainer = (*sealedContainer)(nil)

func (c *sealedContainer) PutDevice(ctx context.Context, dev *store.Device) error {
	if dev.ID == nil {
		return c.inner.PutDevice(ctx, dev) // sqlstore.ErrDeviceIDMustBeSet
	}
	stored := c.stored(dev)
	err := c.inner.PutDevice(ctx, stored)
	if !dev.Initialized && stored.Initialized {
		dev.Identities, dev.Sessions, dev.PreKeys, dev.SenderKeys = stored.Identities, stored.Sessions, stored.PreKeys, stored.SenderKeys
		dev.AppStateKeys, dev.AppState, dev.Contacts, dev.ChatSettings = stored.AppStateKeys, stored.AppState, stored.Contacts, stored.ChatSettings
		dev.MsgSecrets, dev.PrivacyTokens, dev.EventBuffer, dev.LIDs = stored.MsgSecrets, stored.PrivacyTokens, stored.EventBuffer, stored.LIDs
		dev.Initialized = true
	}
	c.protect(dev)
	return err
}

func (c *sealedContainer) DeleteDevice(ctx context.Context, dev *store.Device) error {
	if dev.ID == nil {
		return c.inner.DeleteDevice(ctx, dev)
	}
	return c.inner.DeleteDevice(ctx, c.stored(dev))
}

// stored is the copy of dev that sqlstore sees: its JID sealed.
func (c *sealedContainer) stored(dev *store.Device) *store.Device {
	stored := *dev
	id := c.k.sealJID(*dev.ID)
	stored.ID = &id
	return &stored
}

// loaded gives a device sqlstore loaded (under its sealed JID) its real
// JID and protected stores.
func (c *sealedContainer) loaded(dev *store.Device) error {
	id, err := c.k.openJID(*dev.ID)
	if err != nil {
		return err
	}
	dev.ID = &id
	c.protect(dev)
	return nil
}

// protect installs the wrappers on an initialized device's stores, once,
// and drops the address book and chat settings (privateStores).
func (c *sealedContainer) protect(dev *store.Device) {
	if !dev.Initialized {
		return
	}
	if _, done := dev.Sessions.(*hashedSessions); done {
		return
	}
	dev.Container = c
	privateStores(dev)
	dev.Identities = &hashedIdentities{inner: dev.Identities, k: c.k}
	dev.Sessions = &hashedSessions{inner: dev.Sessions, k: c.k}
	dev.SenderKeys = &hashedSenderKeys{inner: dev.SenderKeys, k: c.k}
	dev.LIDs = &sealedLIDs{inner: dev.LIDs, k: c.k}
	dev.PrivacyTokens = &sealedPrivacyTokens{inner: dev.PrivacyTokens, k: c.k}
	dev.MsgSecrets = &sealedMsgSecrets{inner: dev.MsgSecrets, k: c.k}
}
