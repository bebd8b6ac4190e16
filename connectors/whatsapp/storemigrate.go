package whatsapp

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"go.mau.fi/whatsmeow/types"

	"github.com/switchboard-bridge/switchboard/database"
)

// Rows that whatsmeow stored before the wrappers of storecrypt.go existed
// name contacts (and the account) in clear, and the wrappers would not
// find them (worse, a clear whatsmeow_lid_map.pn would fail to decrypt).
// sealLegacyRows rewrites them into the protected form on every start;
// rows already protected are left alone, so it is idempotent, and a run
// that finds nothing only reads the keys of whatsmeow's tables.

// legacyTable says how to rewrite one whatsmeow table.
type legacyTable struct {
	name string
	cols []string // the columns read: the old row is matched on all of them
	// unique are the indexes in cols of the new key that may already
	// exist (a newer protected row wins; the legacy row is then dropped).
	unique []int
	// rewrite returns the protected values, and false if the row already
	// is protected.
	rewrite func(k *storeKeys, vals []string) ([]string, bool)
}

func legacyTables() []legacyTable {
	address := func(k *storeKeys, vals []string) ([]string, bool) {
		if isHashedAddress(vals[1]) {
			return nil, false
		}
		return []string{vals[0], k.address(vals[1])}, true
	}
	return []legacyTable{
		{name: "whatsmeow_sessions", cols: []string{"our_jid", "their_id"}, unique: []int{0, 1}, rewrite: address},
		{name: "whatsmeow_identity_keys", cols: []string{"our_jid", "their_id"}, unique: []int{0, 1}, rewrite: address},
		{name: "whatsmeow_sender_keys", cols: []string{"our_jid", "chat_id", "sender_id"}, unique: []int{0, 1, 2},
			rewrite: func(k *storeKeys, vals []string) ([]string, bool) {
				out := []string{vals[0], vals[1], vals[2]}
				if !isHash(vals[1]) {
					out[1] = k.hash("sender key chat", vals[1])
				}
				if !isHashedAddress(vals[2]) {
					out[2] = k.address(vals[2])
				}
				return out, out[1] != vals[1] || out[2] != vals[2]
			}},
		{name: "whatsmeow_privacy_tokens", cols: []string{"our_jid", "their_jid"}, unique: []int{0, 1},
			rewrite: func(k *storeKeys, vals []string) ([]string, bool) {
				jid, ok := k.legacyJID(vals[1])
				return []string{vals[0], jid}, ok
			}},
		{name: "whatsmeow_message_secrets", cols: []string{"our_jid", "chat_jid", "sender_jid", "message_id"}, unique: []int{0, 1, 2, 3},
			rewrite: func(k *storeKeys, vals []string) ([]string, bool) {
				chat, chatOK := k.legacyJID(vals[1])
				sender, senderOK := k.legacyJID(vals[2])
				return []string{vals[0], chat, sender, vals[3]}, chatOK || senderOK
			}},
		{name: "whatsmeow_lid_map", cols: []string{"lid", "pn"}, unique: []int{1},
			rewrite: func(k *storeKeys, vals []string) ([]string, bool) {
				if k.isSealedUser(vals[1]) {
					return nil, false
				}
				return []string{vals[0], k.sealUser(vals[1])}, true
			}},
	}
}

// isHash reports whether s is a keyed hash (storeKeys.hash).
func isHash(s string) bool {
	return len(s) == hashLen && isHex(s)
}

// isHashedAddress reports whether a Signal address is "hash:device".
func isHashedAddress(addr string) bool {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		addr = addr[:i]
	}
	return isHash(addr)
}

// legacyJID returns the protected form of a stored JID, and false if it
// already is protected (or is not a JID at all, which is left alone).
// Protection is told by form, not by decrypting: after a change of
// identity.secret nothing is sealed twice.
func (k *storeKeys) legacyJID(s string) (string, bool) {
	jid, err := types.ParseJID(s)
	if err != nil || jid.User == "" || clearServer(jid.Server) || k.isSealedUser(jid.User) {
		return s, false
	}
	return k.sealJID(jid).String(), true
}

// sealLegacyRows protects the rows whatsmeow stored in clear, and empties
// the address book and chat settings the bridge does not keep. SQLite
// overwrites what it deletes (secure_delete), but the page images written
// before stay in the -wal file until it is truncated: when rows were
// rewritten, it is.
func (s *SQLSessions) sealLegacyRows(ctx context.Context) error {
	var total int
	err := s.db.DoTxn(ctx, nil, func(ctx context.Context) error {
		n, err := s.sealLegacyDevices(ctx)
		if err != nil {
			return fmt.Errorf("whatsmeow_device: %w", err)
		}
		if n > 0 {
			s.log.Info().Int("devices", n).Msg("Protected account numbers stored by an older version")
		}
		total += n
		for _, table := range []string{"whatsmeow_contacts", "whatsmeow_chat_settings"} {
			if _, err := s.db.Exec(ctx, "DELETE FROM "+table); err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
		}
		for _, t := range legacyTables() {
			n, err := s.sealLegacyTable(ctx, t)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			if n > 0 {
				s.log.Info().Str("table", t.name).Int("rows", n).Msg("Protected contact numbers stored by an older version")
			}
			total += n
		}
		return nil
	})
	if err != nil || total == 0 {
		return err
	}
	return database.Checkpoint(ctx, s.db)
}

func (s *SQLSessions) sealLegacyTable(ctx context.Context, t legacyTable) (int, error) {
	type change struct{ old, new []string }
	var changes []change
	rows, err := s.db.Query(ctx, "SELECT "+strings.Join(t.cols, ", ")+" FROM "+t.name)
	if err != nil {
		return 0, err
	}
	for rows.Next() {
		vals := make([]sql.NullString, len(t.cols))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err = rows.Scan(ptrs...); err != nil {
			_ = rows.Close()
			return 0, err
		}
		old := make([]string, len(vals))
		valid := true
		for i, v := range vals {
			old[i], valid = v.String, valid && v.Valid
		}
		if !valid {
			continue
		}
		if updated, ok := t.rewrite(s.keys, old); ok {
			changes = append(changes, change{old, updated})
		}
	}
	if err = rows.Close(); err != nil {
		return 0, err
	}
	if err = rows.Err(); err != nil {
		return 0, err
	}
	match := make([]string, len(t.cols))
	for i, c := range t.cols {
		match[i] = fmt.Sprintf("%s=$%d", c, i+1)
	}
	set := make([]string, len(t.cols))
	for i, c := range t.cols {
		set[i] = fmt.Sprintf("%s=$%d", c, len(t.cols)+i+1)
	}
	conflict := make([]string, len(t.unique))
	for i, c := range t.unique {
		conflict[i] = fmt.Sprintf("%s=$%d", t.cols[c], i+1)
	}
	where := " WHERE " + strings.Join(match, " AND ")
	update := "UPDATE " + t.name + " SET " + strings.Join(set, ", ") + where
	del := "DELETE FROM " + t.name + where
	exists := "SELECT COUNT(*) FROM " + t.name + " WHERE " + strings.Join(conflict, " AND ")
	for _, c := range changes {
		args := make([]any, 0, 2*len(t.cols))
		for _, v := range c.old {
			args = append(args, v)
		}
		uniq := make([]any, len(t.unique))
		for i, idx := range t.unique {
			uniq[i] = c.new[idx]
		}
		var n int
		if err = s.db.QueryRow(ctx, exists, uniq...).Scan(&n); err != nil {
			return 0, err
		}
		if n > 0 {
			// A protected row for the same key was stored since: it is newer.
			_, err = s.db.Exec(ctx, del, args...)
		} else {
			for _, v := range c.new {
				args = append(args, v)
			}
			_, err = s.db.Exec(ctx, update, args...)
		}
		if err != nil {
			return 0, err
		}
	}
	return len(changes), nil
}

// sealLegacyDevices renames devices stored under their clear JID to the
// sealed one (sealedContainer). The tables with a foreign key on
// whatsmeow_device follow (ON UPDATE CASCADE); whatsmeow_privacy_tokens
// has none and is renamed here.
func (s *SQLSessions) sealLegacyDevices(ctx context.Context) (int, error) {
	rows, err := s.db.Query(ctx, "SELECT jid FROM whatsmeow_device")
	if err != nil {
		return 0, err
	}
	var renames [][2]string
	for rows.Next() {
		var jid string
		if err = rows.Scan(&jid); err != nil {
			_ = rows.Close()
			return 0, err
		}
		if sealed, ok := s.keys.legacyJID(jid); ok {
			renames = append(renames, [2]string{jid, sealed})
		}
	}
	if err = rows.Close(); err != nil {
		return 0, err
	}
	if err = rows.Err(); err != nil {
		return 0, err
	}
	for _, r := range renames {
		var n int
		if err = s.db.QueryRow(ctx, "SELECT COUNT(*) FROM whatsmeow_device WHERE jid=$1", r[1]).Scan(&n); err != nil {
			return 0, err
		}
		if n > 0 {
			// Paired again since: the legacy device is stale.
			if _, err = s.db.Exec(ctx, "DELETE FROM whatsmeow_device WHERE jid=$1", r[0]); err != nil {
				return 0, err
			}
			if _, err = s.db.Exec(ctx, "DELETE FROM whatsmeow_privacy_tokens WHERE our_jid=$1", r[0]); err != nil {
				return 0, err
			}
			continue
		}
		for _, q := range []string{
			"UPDATE whatsmeow_device SET jid=$2 WHERE jid=$1",
			"DELETE FROM whatsmeow_privacy_tokens WHERE our_jid=$1 AND their_jid IN (SELECT their_jid FROM whatsmeow_privacy_tokens WHERE our_jid=$2)",
			"UPDATE whatsmeow_privacy_tokens SET our_jid=$2 WHERE our_jid=$1",
		} {
			if _, err = s.db.Exec(ctx, q, r[0], r[1]); err != nil {
				return 0, err
			}
		}
	}
	return len(renames), nil
}
