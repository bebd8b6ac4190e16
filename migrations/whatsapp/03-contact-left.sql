-- v2 -> v3: whatsapp: relay groups whose contact left
-- A group the relay account made for one conversation holds the contact
-- alone (contact_hash); contact_left is true while they are out of it, so
-- messages sent there fail with a reason instead of reaching nobody.
ALTER TABLE sb_whatsapp_chat ADD COLUMN contact_left BOOLEAN NOT NULL DEFAULT false;
