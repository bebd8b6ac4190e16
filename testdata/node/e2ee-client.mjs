#!/usr/bin/env node
// An independent end-to-end-encrypting Matrix client for switchboard's Go
// tests, built on matrix-js-sdk with its Rust crypto (Vodozemac).
//
// Start:
//   node e2ee-client.mjs --homeserver URL (--user-id ID --access-token TOKEN |
//        --username NAME --password PW) [--device-id ID]
// Each option may instead come from the environment: MATRIX_HOMESERVER,
// MATRIX_USER_ID, MATRIX_ACCESS_TOKEN, MATRIX_USERNAME, MATRIX_PASSWORD,
// MATRIX_DEVICE_ID. E2EE_CLIENT_DEBUG=1 keeps the SDK's debug output (on
// stderr).
//
// Protocol: one JSON object per line. stdout carries only protocol lines;
// everything else goes to stderr.
//   -> {"event":"ready","user_id":…,"device_id":…}   after the first sync,
//      once the server has this device's keys (others can encrypt to it)
//   -> {"event":"fatal","error":…}                    then exit 1
// Commands on stdin carry an optional "id" that the answer repeats; answers
// are {"id":…,"ok":true,…} or {"id":…,"ok":false,"error":…}. Commands run
// concurrently, so a long wait does not hold up the others.
//   {"cmd":"create_room","encrypted":true,"invite":[…],"is_direct":true,"name":…}
//       -> {"room_id":…}
//   {"cmd":"join","room":…}                            -> {"room_id":…}
//   {"cmd":"send","room":…,"body":…,"msgtype":"m.text"} -> {"event_id":…,"encrypted":bool}
//       waits until this client has joined the room and, if the room is
//       encrypted on the server, until it knows that too (never sends plain
//       text into an encrypted room)
//   {"cmd":"wait_message","room":…,"sender":…,"timeout_ms":…}
//       -> {"event":"message","room":…,"sender":…,"body":…,"msgtype":…,
//           "event_id":…,"decrypted":bool}
//       takes the oldest m.room.message not from this user that was not
//       taken before (room and sender are optional filters); on timeout the
//       error lists events that could not be decrypted
//   {"cmd":"wait_member","room":…,"user":…,"membership":"join","timeout_ms":…} -> {}
//   {"cmd":"wait_invite","timeout_ms":…}               -> {"room_id":…,"inviter":…}
//   {"cmd":"device_verification","user":…,"device":…}
//       -> {"known":bool,"signed_by_owner":bool,"cross_signing_verified":bool}
//       fetches the user's keys if this client does not track the user yet,
//       and says whether it knows the device, sees it signed by its owner's
//       self-signing key, and
//       trusts it through cross-signing (which also needs the owner's
//       identity verified by this user)
//   {"cmd":"quit"}                                     -> {} then exit 0
// Closing stdin also quits.

import { createInterface } from "node:readline";
import { format } from "node:util";

// The wasm crypto and the SDK log a lot: keep stdout for the protocol.
const debug = process.env.E2EE_CLIENT_DEBUG === "1";
// Harmless messages the SDK repeats on every start (push rule defaults that
// Dendrite does not send, MatrixRTC bookkeeping); they would bury the lines
// that matter in a failing test's output.
const noise = [/^(Missing|Adding) default global \w+ push rule/, /Got room state event for unknown room/];
const toStderr = (...args) => {
  const line = format(...args);
  if (!debug && noise.some((re) => re.test(line))) return;
  process.stderr.write(line + "\n");
};
console.log = toStderr;
console.warn = toStderr;
console.error = toStderr;
console.trace = debug ? toStderr : () => {};
console.debug = debug ? toStderr : () => {};
console.info = debug ? toStderr : () => {};

const sdk = await import("matrix-js-sdk");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
if (!debug && typeof logger.setLevel === "function") {
  logger.setLevel("warn");
}
const { ClientEvent, RoomEvent, RoomMemberEvent, MatrixEventEvent } = sdk;

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function fatal(err) {
  const msg = err && err.stack ? err.stack : String(err);
  toStderr("e2ee-client: fatal:", msg);
  process.stdout.write(JSON.stringify({ event: "fatal", error: String(err && err.message ? err.message : err) }) + "\n", () =>
    process.exit(1),
  );
}

function parseArgs(argv) {
  const opts = {
    homeserver: process.env.MATRIX_HOMESERVER,
    userId: process.env.MATRIX_USER_ID,
    accessToken: process.env.MATRIX_ACCESS_TOKEN,
    username: process.env.MATRIX_USERNAME,
    password: process.env.MATRIX_PASSWORD,
    deviceId: process.env.MATRIX_DEVICE_ID,
  };
  const names = {
    "--homeserver": "homeserver",
    "--user-id": "userId",
    "--access-token": "accessToken",
    "--username": "username",
    "--password": "password",
    "--device-id": "deviceId",
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s);
    const key = names[flag];
    if (!key) throw new Error(`unknown argument ${argv[i]}`);
    opts[key] = inline !== undefined ? inline : argv[++i];
  }
  if (!opts.homeserver) throw new Error("--homeserver is required");
  if (!opts.accessToken && !(opts.username && opts.password)) {
    throw new Error("give --user-id and --access-token, or --username and --password");
  }
  return opts;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// waitUntil polls fn (which may be async) until it returns a truthy value.
async function waitUntil(fn, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

const opts = parseArgs(process.argv.slice(2));

if (!opts.accessToken) {
  const loginClient = sdk.createClient({ baseUrl: opts.homeserver });
  const res = await loginClient.login("m.login.password", {
    identifier: { type: "m.id.user", user: opts.username },
    password: opts.password,
    device_id: opts.deviceId,
  });
  opts.userId = res.user_id;
  opts.accessToken = res.access_token;
  opts.deviceId = res.device_id;
}
if (!opts.userId || !opts.deviceId) {
  const probe = sdk.createClient({ baseUrl: opts.homeserver, accessToken: opts.accessToken });
  const who = await probe.whoami();
  opts.userId = opts.userId || who.user_id;
  opts.deviceId = opts.deviceId || who.device_id;
}
if (!opts.deviceId) throw new Error("no device ID: give --device-id (the device the access token belongs to)");

const client = sdk.createClient({
  baseUrl: opts.homeserver,
  userId: opts.userId,
  accessToken: opts.accessToken,
  deviceId: opts.deviceId,
});
const me = opts.userId;

// Messages not yet taken by wait_message, oldest first.
const messages = [];
const seenMessages = new Set();
// Encrypted events that could not be decrypted (yet), by event ID.
const undecryptable = new Map();
const invites = [];
const seenInvites = new Set();

function onEvent(ev) {
  const eventId = ev.getId();
  if (!eventId || ev.isBeingDecrypted()) return;
  if (ev.isDecryptionFailure()) {
    undecryptable.set(eventId, {
      room: ev.getRoomId(),
      sender: ev.getSender(),
      reason: String(ev.decryptionFailureReason ?? ev.getContent().body),
    });
    return;
  }
  if (ev.getType() !== "m.room.message" || ev.getSender() === me || seenMessages.has(eventId)) return;
  if (ev.getWireType() === "m.room.encrypted" && !ev.getClearContent()) return; // not decrypted yet
  undecryptable.delete(eventId);
  seenMessages.add(eventId);
  const content = ev.getContent();
  messages.push({
    event: "message",
    room: ev.getRoomId(),
    sender: ev.getSender(),
    body: content.body,
    msgtype: content.msgtype,
    event_id: eventId,
    decrypted: ev.isEncrypted(),
  });
}

function onInvite(roomId, inviter) {
  if (seenInvites.has(roomId)) return;
  seenInvites.add(roomId);
  invites.push({ room_id: roomId, inviter });
}

client.on(RoomEvent.Timeline, (ev) => onEvent(ev));
client.on(MatrixEventEvent.Decrypted, (ev) => onEvent(ev));
client.on(RoomMemberEvent.Membership, (ev, member) => {
  if (member.userId === me && member.membership === "invite") onInvite(member.roomId, ev.getSender());
});

async function joinedRoom(roomId, timeoutMs) {
  return waitUntil(
    () => {
      const room = client.getRoom(roomId);
      return room && room.getMyMembership() === "join" ? room : null;
    },
    timeoutMs,
    `${me} to have joined ${roomId}`,
  );
}

async function encryptedOnServer(roomId) {
  try {
    await client.getStateEvent(roomId, "m.room.encryption", "");
    return true;
  } catch (err) {
    if (err.errcode === "M_NOT_FOUND") return false;
    throw err;
  }
}

const handlers = {
  async create_room(c) {
    const invite = c.invite ?? [];
    const initialState = [];
    if (c.encrypted) {
      initialState.push({ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } });
    }
    const { room_id: roomId } = await client.createRoom({
      preset: c.is_direct ? "trusted_private_chat" : "private_chat",
      name: c.name,
      invite,
      is_direct: !!c.is_direct,
      initial_state: initialState,
    });
    if (c.is_direct && invite.length > 0) {
      const direct = client.getAccountData("m.direct")?.getContent() ?? {};
      for (const user of invite) direct[user] = [...(direct[user] ?? []), roomId];
      await client.setAccountData("m.direct", direct);
    }
    await joinedRoom(roomId, c.timeout_ms ?? 30000);
    return { room_id: roomId };
  },

  async join(c) {
    const room = await client.joinRoom(c.room);
    await joinedRoom(room.roomId, c.timeout_ms ?? 30000);
    return { room_id: room.roomId };
  },

  async send(c) {
    const timeoutMs = c.timeout_ms ?? 30000;
    await joinedRoom(c.room, timeoutMs);
    if (await encryptedOnServer(c.room)) {
      await waitUntil(
        () => client.getCrypto().isEncryptionEnabledInRoom(c.room),
        timeoutMs,
        `the client to see encryption in ${c.room}`,
      );
    }
    const res = await client.sendMessage(c.room, { msgtype: c.msgtype ?? "m.text", body: c.body });
    const local = client.getRoom(c.room)?.findEventById(res.event_id);
    const encrypted = local ? local.isEncrypted() : await client.getCrypto().isEncryptionEnabledInRoom(c.room);
    return { event_id: res.event_id, encrypted };
  },

  async wait_message(c) {
    const timeoutMs = c.timeout_ms ?? 30000;
    const matches = (m) => (!c.room || m.room === c.room) && (!c.sender || m.sender === c.sender);
    try {
      await waitUntil(() => messages.some(matches), timeoutMs, "a message");
    } catch (err) {
      const utd = [...undecryptable.entries()]
        .filter(([, u]) => !c.room || u.room === c.room)
        .map(([id, u]) => `${id} from ${u.sender}: ${u.reason}`);
      if (utd.length > 0) err.message += `; undecryptable events: ${utd.join("; ")}`;
      throw err;
    }
    const idx = messages.findIndex(matches);
    return messages.splice(idx, 1)[0];
  },

  async wait_member(c) {
    const membership = c.membership ?? "join";
    await waitUntil(
      () => client.getRoom(c.room)?.getMember(c.user)?.membership === membership,
      c.timeout_ms ?? 30000,
      `${c.user} to have membership ${membership} in ${c.room}`,
    );
    return {};
  },

  async wait_invite(c) {
    await waitUntil(
      () => {
        for (const room of client.getRooms()) {
          if (room.getMyMembership() === "invite") {
            onInvite(room.roomId, room.getMember(me)?.events?.member?.getSender());
          }
        }
        return invites.length > 0;
      },
      c.timeout_ms ?? 30000,
      "an invite",
    );
    return invites.shift();
  },

  async device_verification(c) {
    const crypto = client.getCrypto();
    const devices = await crypto.getUserDeviceInfo([c.user], true);
    const known = !!devices.get(c.user)?.has(c.device);
    const status = known ? await crypto.getDeviceVerificationStatus(c.user, c.device) : null;
    return {
      known,
      signed_by_owner: !!status?.signedByOwner,
      cross_signing_verified: !!status?.crossSigningVerified,
    };
  },

  async quit() {
    return {};
  },
};

let quitting = false;

async function quit(code) {
  if (quitting) return;
  quitting = true;
  try {
    client.stopClient();
  } catch (err) {
    toStderr("e2ee-client: stop:", err);
  }
  process.stdout.write("", () => process.exit(code));
}

async function handle(line) {
  if (!line.trim()) return;
  let c;
  try {
    c = JSON.parse(line);
  } catch (err) {
    emit({ ok: false, error: `bad JSON command: ${err.message}` });
    return;
  }
  const handler = handlers[c.cmd];
  if (!handler) {
    emit({ id: c.id, ok: false, error: `unknown command ${JSON.stringify(c.cmd)}` });
    return;
  }
  try {
    const result = await handler(c);
    emit({ ...result, id: c.id, ok: true });
  } catch (err) {
    const detail = err.errcode ? `${err.errcode}: ${err.message}` : String(err.message ?? err);
    emit({ id: c.id, ok: false, error: detail });
  }
  if (c.cmd === "quit") await quit(0);
}

try {
  await client.initRustCrypto({ useIndexedDB: false });
  const prepared = new Promise((resolve, reject) => {
    client.on(ClientEvent.Sync, (state, _prev, data) => {
      if (state === "PREPARED") resolve();
      if (state === "ERROR" && !client.isInitialSyncComplete()) reject(data?.error ?? new Error("initial sync failed"));
    });
  });
  await client.startClient({ initialSyncLimit: 20 });
  await prepared;
  // Ready means other clients can encrypt to this device: its keys are on
  // the server.
  await waitUntil(
    async () => {
      const devices = await client.getCrypto().getUserDeviceInfo([me], true);
      return devices.get(me)?.has(opts.deviceId);
    },
    30000,
    "this device's keys to be uploaded",
  );
} catch (err) {
  fatal(err);
  await new Promise(() => {}); // fatal exits
}

emit({ event: "ready", user_id: me, device_id: opts.deviceId });

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", (line) => {
  handle(line);
});
rl.on("close", () => quit(0));
