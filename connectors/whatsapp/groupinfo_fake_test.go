package whatsapp

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types"
)

// fakeGroups is the fake's group state: what WhatsApp would hold for
// groups the tests set up, the edits the connector made, and what it
// refuses (refuse: the next edits fail with that error).
type fakeGroups struct {
	mu       sync.Mutex
	groups   map[types.JID]*types.GroupInfo
	pictures map[types.JID]*types.ProfilePictureInfo
	names    []string
	topics   []string
	photos   [][]byte
	removed  []types.JID
	added    []types.JID
	refuse   error
}

// withGroup gives f a group with the account and members in it.
func (f *fakeClient) withGroup(jid types.JID, name string, members ...types.JID) *fakeGroups {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.groups == nil {
		f.groups = &fakeGroups{groups: map[types.JID]*types.GroupInfo{}, pictures: map[types.JID]*types.ProfilePictureInfo{}}
	}
	info := &types.GroupInfo{JID: jid, GroupName: types.GroupName{Name: name}}
	for _, m := range append([]types.JID{f.own.ToNonAD()}, members...) {
		info.Participants = append(info.Participants, types.GroupParticipant{JID: m, PhoneNumber: m})
	}
	f.groups.mu.Lock()
	f.groups.groups[jid] = info
	f.groups.mu.Unlock()
	return f.groups
}

func (g *fakeGroups) info(jid types.JID) *types.GroupInfo {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if info, ok := g.groups[jid]; ok {
		cp := *info
		cp.Participants = slices.Clone(info.Participants)
		return &cp
	}
	return nil
}

func (g *fakeGroups) edit(jid types.JID, fn func(*types.GroupInfo)) error {
	if g == nil {
		return whatsmeow.ErrNotInGroup
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.refuse != nil {
		return g.refuse
	}
	info, ok := g.groups[jid]
	if !ok {
		return whatsmeow.ErrNotInGroup
	}
	fn(info)
	return nil
}

func (g *fakeGroups) snapshot() (names, topics []string, photos [][]byte, removed []types.JID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.names), slices.Clone(g.topics), slices.Clone(g.photos), slices.Clone(g.removed)
}

// changed wakes waitFor after a group edit.
func (f *fakeClient) changed() {
	f.mu.Lock()
	f.cond.Broadcast()
	f.mu.Unlock()
}

func (f *fakeClient) SetGroupName(_ context.Context, jid types.JID, name string) error {
	defer f.changed()
	return f.groups.edit(jid, func(info *types.GroupInfo) {
		info.Name = name
		f.groups.names = append(f.groups.names, name)
	})
}

func (f *fakeClient) SetGroupTopic(_ context.Context, jid types.JID, _, _, topic string) error {
	defer f.changed()
	return f.groups.edit(jid, func(info *types.GroupInfo) {
		info.Topic = topic
		f.groups.topics = append(f.groups.topics, topic)
	})
}

func (f *fakeClient) SetGroupPhoto(_ context.Context, jid types.JID, avatar []byte) (string, error) {
	defer f.changed()
	var id string
	err := f.groups.edit(jid, func(*types.GroupInfo) {
		f.groups.photos = append(f.groups.photos, slices.Clone(avatar))
		id = fmt.Sprintf("pic%d", len(f.groups.photos))
	})
	return id, err
}

func (f *fakeClient) UpdateGroupParticipants(_ context.Context, jid types.JID, changes []types.JID, action whatsmeow.ParticipantChange) ([]types.GroupParticipant, error) {
	defer f.changed()
	var out []types.GroupParticipant
	err := f.groups.edit(jid, func(info *types.GroupInfo) {
		for _, c := range changes {
			res := types.GroupParticipant{JID: c}
			switch action {
			case whatsmeow.ParticipantChangeRemove:
				info.Participants = slices.DeleteFunc(info.Participants, func(p types.GroupParticipant) bool { return p.JID == c })
				f.groups.removed = append(f.groups.removed, c)
			case whatsmeow.ParticipantChangeAdd:
				switch {
				case slices.ContainsFunc(info.Participants, func(p types.GroupParticipant) bool { return p.JID == c }):
					res.Error = 409
				case f.refuseAdd[c.User] != 0:
					res.Error = f.refuseAdd[c.User]
				default:
					info.Participants = append(info.Participants, res)
					f.groups.added = append(f.groups.added, c)
				}
			}
			out = append(out, res)
		}
	})
	return out, err
}

func (f *fakeClient) GetProfilePictureInfo(_ context.Context, jid types.JID, _ *whatsmeow.GetProfilePictureParams) (*types.ProfilePictureInfo, error) {
	if f.groups == nil {
		return nil, nil
	}
	f.groups.mu.Lock()
	defer f.groups.mu.Unlock()
	return f.groups.pictures[jid], nil
}

var _ groupClient = (*fakeClient)(nil)
