// Package safety keeps the bridge from being used to harass people or to
// pump SMS, without ever reading what people write.
//
// End-to-end encryption means the bridge cannot, and must not, judge
// content. What it can see is metadata: who sends, to which conversation,
// how often, how many new numbers they reach, which destinations, whether
// anyone answers, and whether recipients block or report them. From that
// alone the package
//
//   - rate-limits senders, conversations and inbound contacts at admission
//     (a refused sender is told, nothing is dropped silently) — see Admit;
//   - throttles fan-out: new conversations per hour (NewChatGate) and SMS to
//     high-cost destinations per hour (CheckSMS), telling the user why and
//     flagging them to the admins;
//   - scores each sender from metadata signals (Input has no content field)
//     and suspends a user above safety.suspend_score pending admin review;
//   - keeps blocks (`block`: the blocking user no longer receives from that
//     person on any network their verified identity links, keyed by
//     identity.Store.PersonKey) and forwards reports (`report`) to the admin
//     room with the contact's pseudonym, counts and times — message text only
//     when the reporter explicitly includes it;
//   - answers the admin commands (`admin flags|status|suspend|unsuspend`).
//
// SMS pacing per pool number lives in the SMS connector (it knows the pool
// numbers); it returns bridge.Paced so the router re-queues without
// counting a failure.
//
// Every decision is logged and recorded without content; signals and
// decisions are purged after retention.metadata. The schema has its own
// version table, sb_safety_version.
package safety
