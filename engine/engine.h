#pragma once

// Engine: segd's in-memory state and every operation on it. This is the front door of the
// engine/ folder: the server and storage layers include this header and no other engine
// header (it brings the types they share: records and batches, clocks, error codes).
//
// Model
//   Users have an external id (1–256 bytes of UTF-8) and a dense internal UserId. Segments have
//   a name and a dense SegmentId. Memberships are bits in per-shard Roaring bitmaps
//   (membership_shards.h), mirrored per user in a reverse index that also holds expiries.
//   Expiries are driven by a hierarchical timing wheel, to the millisecond (expiry_schedule.h).
//
// Mutations
//   Each mutation is planned into an OpBatch while holding the writer lock, handed to the
//   OpSink, and applied to memory only if the sink accepts it. A mutation that fails (bad
//   input, unknown segment, sink error) changes nothing. Applying a batch needs nothing but the
//   batch (ApplyRecovered replays one), so the sink's log is a complete description of state.
//
// Threads
//   Every public method is thread-safe. Mutations (and ProcessExpiries) are serialized by one
//   writer lock. With a sink whose durability wait blocks (fsync), a write queue takes the lock
//   for them (write_queue.h): concurrent mutations run as a group on one thread, in submission
//   order, and share one durability wait; adjacent single-user mutations (RegisterUser,
//   DeleteUser, UpdateUserSegments) of distinct users share one sink batch (a combined
//   commit), planned one after another and applied together. A single-user mutation's planning
//   reads only that user's state, the segment catalog (which they never change) and the next
//   free user id (NextNewUserId counts what the combined commit has collected), so planning it
//   before the batches collected ahead of it are applied gives the same result as after.
//   Readers never take the writer lock; they take one short reader lock at a time (a user
//   shard, the catalog, a dictionary shard), and a writer applies bulk work in chunks of at
//   most MembershipShards::kMaxChunk records per lock hold, so a reader waits at most one chunk
//   (tens to hundreds of microseconds) even while a 10M-member segment is deleted.
//   Consistency for readers: everything about one user changes at once (one shard); a bulk
//   operation over many users becomes visible shard by shard.
//   The OpSink is called with the writer lock held; it must not call back into the engine.

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "base/mutex.h"
#include "engine/clock.h"
#include "engine/detail/durability_notifier.h"
#include "engine/errors.h"
#include "engine/expiry_schedule.h"
#include "engine/membership_shards.h"
#include "engine/op_record.h"
#include "engine/rules/rule_set.h"
#include "engine/segment_catalog.h"
#include "engine/types.h"
#include "engine/user_dictionary.h"
#include "engine/write_queue.h"

namespace segd::engine {

struct EngineOptions {
  // Source of time. Not owned; must outlive the engine. Default: the system clock.
  Clock* clock = nullptr;
  // Receives every batch before it is applied. Not owned; must outlive the engine.
  // Default: a NullSink.
  OpSink* sink = nullptr;
  // Seed of the generator behind auto_percent sampling; 0 draws one from the OS.
  // Default: 0.
  uint64_t random_seed = 0;
  // Largest TTL accepted, in seconds. Default: 100 years.
  int64_t max_ttl_seconds = int64_t{100} * 365 * 24 * 3600;
  // How far back events are kept and accepted, and the window of a count or sum that names
  // none (docs/rules.md). Default: 90 days.
  TimeMs event_retention_ms = TimeMs{90} * 24 * 3600 * 1000;
  // Where a backfill reads earlier events. Not owned. Default: none (a new rule then sees only
  // the events accepted after it).
  const EventSource* events = nullptr;
  // Identities (AddAliases): the most aliases one user may have, and names refused as aliases
  // (compared without case), which clients send when they have no id.
  size_t max_aliases = 100;
  std::vector<std::string> refused_aliases = {"null",      "undefined",      "0",   "-1",
                                              "anonymous", "none",           "nil", "unknown",
                                              "guest",     "[object object]"};
};

// What AddAliases and RemoveAlias did.
struct AliasResult {
  std::string user_id;               // the user's own id
  std::vector<std::string> aliases;  // every alias of the user now, sorted
  std::vector<std::string> merged;   // the users merged into it by this call, by their own ids
};

// What a client asks for when creating a segment.
struct SegmentSpec {
  std::string name;
  std::string description;
  std::optional<double> auto_percent;  // 0–100
  bool auto_percent_sticky = false;
  std::optional<int64_t> ttl_seconds;  // default TTL of new memberships, >= 1
  // A rule segment's rule (docs/rules.md); excludes auto_percent and ttl_seconds.
  std::optional<std::string> rule;
};

// Fields a client may change on an active segment; unset fields stay as they are.
struct SegmentPatch {
  std::optional<std::string> description;
  // Set to nullopt-inside-optional to clear the default TTL.
  std::optional<std::optional<int64_t>> ttl_seconds;
  // A sticky rollout's new percentage (0-100): see UpdateSegment.
  std::optional<double> auto_percent;
  // A rule segment's new rule: backfilled, then swapped in (see UpdateSegment).
  std::optional<std::string> rule;
};

struct SegmentInfo {
  SegmentMeta meta;
  uint64_t user_count = 0;
  // Rule segments: whether a rule is being backfilled, and how far (events read of those to
  // read; both 0 while it waits for another backfill).
  bool backfilling = false;
  uint64_t backfill_done = 0;
  uint64_t backfill_total = 0;
};

// One event as a client sends it (POST /v1/events).
struct EventInput {
  std::string user_id;
  std::string type;
  std::optional<TimeMs> at;  // default: when it is accepted
  std::vector<EventProperty> properties;
  std::vector<EventProperty> traits;  // set on the user, newest `at` wins per key
};

struct IngestResult {
  uint64_t accepted = 0;
  // Events not accepted: index into the request and why.
  std::vector<std::pair<size_t, absl::Status>> invalid;
};

// Trait changes of PATCH /v1/users/{id}/traits: nullopt removes the trait.
using TraitPatch = std::vector<std::pair<std::string, std::optional<rules::Value>>>;

struct RuleStats {
  rules::RuleSet::Stats rules;
  uint64_t events_accepted = 0;  // since start
  uint64_t rule_changes = 0;     // membership changes with reason rule, since start
  uint64_t backfills_running = 0;
};

// One segment to add a user to, with an optional TTL or absolute expiry (not both).
struct MembershipAdd {
  std::string segment;
  std::optional<int64_t> ttl_seconds;
  std::optional<TimeMs> expires_at;
};

struct UserUpdate {
  std::vector<MembershipAdd> add;
  std::vector<std::string> remove;
};

struct UserUpdateResult {
  std::vector<std::string> added;    // not a member before
  std::vector<std::string> updated;  // a member before; expiry set anew
  std::vector<std::string> removed;  // a member before
};

struct Membership {
  bool member = false;
  TimeMs expires_at = kNoExpiry;
};

struct UserSegment {
  // The segment's name; the view stays valid for the engine's lifetime (names are immutable).
  absl::string_view segment;
  TimeMs expires_at = kNoExpiry;
  // When the user was last added (or its membership refreshed), to the second; kUnknownTime
  // only for memberships recovered from a snapshot that did not keep it (format 6).
  TimeMs added_at = kUnknownTime;
};

struct UserProfile {
  std::string user_id;                                       // its own id
  std::vector<std::string> aliases;                          // sorted
  std::vector<std::pair<std::string, rules::Value>> traits;  // sorted by key
  std::vector<UserSegment> segments;
};

struct ImportItem {
  std::string user_id;
  std::optional<int64_t> ttl_seconds;
};

struct ImportResult {
  uint64_t added = 0;
  uint64_t updated = 0;
  // Items not applied: index into the request and why.
  std::vector<std::pair<size_t, absl::Status>> invalid;
};

// A page of a segment's members by internal id (ScanMembers).
struct MemberScan {
  std::vector<std::string> users;
  uint64_t next = 0;  // where the next page starts; 0 once the last member is returned
};

struct MemberPage {
  std::vector<std::string> users;
  std::optional<std::string> next;  // the last user returned, when more follow
};

struct QueryResult {
  uint64_t user_count = 0;
  std::vector<std::string> users;
};

struct EngineStats {
  uint64_t active_segments = 0;
  uint64_t registered_users = 0;
  uint64_t known_users = 0;
  uint64_t memberships = 0;
  uint64_t pending_expiries = 0;
  uint64_t expired_total = 0;
};

// Bytes held, by structure (estimates from the structures' own accounting).
struct EngineMemory {
  size_t dictionary = 0;
  size_t memberships = 0;  // bitmaps, registry and reverse index
  size_t bitmaps = 0;      // the segment bitmaps alone (part of `memberships`)
  size_t expiry_wheel = 0;
};

class Engine final : private WriteQueue::Combiner {
 public:
  static constexpr uint32_t kMaxPageLimit = 100000;
  static constexpr uint32_t kMaxQueryLimit = 100000;
  // Expiry records per sink batch (ProcessExpiries).
  static constexpr uint64_t kMaxExpiryBatch = 65536;

  explicit Engine(EngineOptions options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // ----- Segments -----

  // Creates `spec.name`, or restores it (empty, with spec's fields) if it names a deleted
  // segment. With auto_percent, adds round-half-up(N × p / 100) of the N registered users,
  // chosen uniformly at random (reason auto_percent); with auto_percent_sticky, adds each
  // registered user whose StickyPercentDecision is true, now and when users register later.
  // Errors: bad_request (name, description over 4 KiB, percent outside 0–100, TTL < 1),
  // segment_exists if active.
  absl::StatusOr<SegmentInfo> CreateSegment(const SegmentSpec& spec);
  // Changes what `patch` sets, in one logged batch. A new auto_percent ramps a sticky rollout:
  // up, it adds the registered users the new cut takes in and the old one did not (everyone
  // already in stays); down, it removes the members the old cut took in and the new one does
  // not (members added by hand stay). Both are logged with reason auto_percent; adds take the
  // segment's default TTL. Errors: bad_request (and for auto_percent on a segment without a
  // sticky rollout), segment_not_found (unknown or deleted).
  absl::StatusOr<SegmentInfo> UpdateSegment(absl::string_view name, const SegmentPatch& patch);
  // Soft delete: removes every member (reason segment_deleted), cancels their expiries, keeps
  // the name and id. Returns the number of members removed. Errors: segment_not_found.
  absl::StatusOr<uint64_t> DeleteSegment(absl::string_view name);
  // Errors: segment_not_found (unknown; a deleted segment is returned with deleted_at set).
  absl::StatusOr<SegmentInfo> GetSegment(absl::string_view name) const;
  // Sorted by name.
  std::vector<SegmentInfo> ListSegments(bool include_deleted) const;
  // Errors: segment_not_found (unknown or deleted).
  absl::StatusOr<uint64_t> Count(absl::string_view name) const;

  // ----- Users and memberships -----

  // Registers the user (the population of auto_percent). Returns true if it was not registered
  // before (new, or deleted earlier), false if it already was. Errors: bad_request.
  absl::StatusOr<bool> RegisterUser(absl::string_view user_id);
  // Removes the user from every segment (reason user_deleted) and from the registry; its id
  // and history stay. Returns the names of the segments it left, sorted.
  // Errors: bad_request, user_not_found (never seen or already deleted).
  absl::StatusOr<std::vector<std::string>> DeleteUser(absl::string_view user_id);
  // Attaches `aliases` to the user `user_id` (an id or an alias; a new id is registered
  // first). An alias not yet known is attached; one that is already this user's is left; one
  // that is another user's id or alias is alias_taken (409, naming that user), unless `merge`:
  // then that user is merged into this one (memberships united, the later expiry winning and
  // none beating any; traits kept where this user has none; rule state joined and rules
  // evaluated again; its ids become aliases of this user; changes logged with reason merge).
  // All or nothing. Errors: bad_request (a malformed id, or one of options.refused_aliases),
  // alias_taken, conflict (more than options.max_aliases aliases).
  absl::StatusOr<AliasResult> AddAliases(absl::string_view user_id,
                                         absl::Span<const std::string> aliases, bool merge);
  // Stops `alias` resolving to `user_id`'s user (a merge is not undone). Errors: bad_request,
  // user_not_found, not_found (not an alias of that user).
  absl::StatusOr<AliasResult> RemoveAlias(absl::string_view user_id, absl::string_view alias);
  // The aliases of the user named `user_id` (an id or alias), sorted; empty if none.
  std::vector<std::string> AliasesOf(absl::string_view user_id) const;
  // Whether any alias exists (while none does, every name is its user's own).
  bool HasAliases() const { return users_.alias_count() > 0; }
  // The user's own id for `user_id` (itself, or the user an alias names); nullopt if unknown.
  std::optional<std::string> OwnName(absl::string_view user_id) const;
  // Recovery: merges and aliases read from the log. Merges before the users are recovered (a
  // merged user's name is not indexed), aliases after.
  void RecoverMerges(absl::Span<const UserMerge> merges);
  absl::Status RecoverAliases(absl::Span<const AliasChange> aliases);

  // Applies adds and removes for one user, all or nothing. A user first seen here is
  // registered. Errors: bad_request (ids, names, TTL and expires_at both set, TTL < 1,
  // expires_at not in the future), conflict_in_request (a segment twice, or in add and remove),
  // segment_not_found with every unknown or deleted segment in the details.
  absl::StatusOr<UserUpdateResult> UpdateUserSegments(absl::string_view user_id,
                                                      const UserUpdate& update);
  // Runs run(0) … run(n-1) on this thread, in order, with their single-user mutations
  // (RegisterUser, DeleteUser, UpdateUserSegments: those keyed by a user) combined into as few
  // log batches as the keys allow, under one hold of the writer lock. The server runs the
  // single-user requests that arrive in one pass of its event loop through here, so that they
  // cost one log write, not one each (group commit across connections). A combined batch ends
  // before a user already in it and before a mutation that is not keyed (which commits
  // alone). A keyed mutation returns its result before its batch is written: the returned
  // vector holds, per call, the status of the batch its mutation joined, OK or the sink's
  // error, in which case that call's change was not applied and its result must be replaced.
  // Nothing here waits for durability: when the sink's wait blocks (fsync), the caller asks
  // WhenDurable before it acknowledges any of the calls. `run` must not call RunGathered and
  // must not block on another thread's engine write.
  std::vector<absl::Status> RunGathered(size_t n, absl::FunctionRef<void(size_t)> run)
      ABSL_LOCKS_EXCLUDED(write_mu_);
  // Calls done(status) once every mutation that returned before this call is as durable as
  // the sink promises: at once when its durability wait does not block (process), otherwise
  // from the engine's durability thread after one sync that all requests pending then share
  // (detail/durability_notifier.h). `done` should only hand the status on (post it to an
  // event loop). Any thread.
  void WhenDurable(absl::AnyInvocable<void(absl::Status) &&> done);

  // Adds each item's user to `segment` (logged with `reason`: import for bulk imports, api for
  // a Redis SADD of many members). An item's TTL, else `ttl_seconds`, else the segment's
  // default applies. Invalid items are reported and skipped; the rest are applied together.
  // Errors: bad_request (ttl_seconds < 1), segment_not_found, segment_is_computed.
  absl::StatusOr<ImportResult> Import(absl::string_view segment, absl::Span<const ImportItem> items,
                                      std::optional<int64_t> ttl_seconds,
                                      OpReason reason = OpReason::kImport);
  // Adds each pair's user to its segment with the segment's default TTL (reason api), all in
  // one log batch: a pipeline of single-member Redis SADDs, from one or many connections. Each
  // pair succeeds or fails on its own: per pair, whether the user was added (false: it was a
  // member, its expiry renewed), or its error (bad_request for a malformed id or name,
  // segment_not_found, segment_is_computed). Errors of the call: the sink's (nothing applied).
  absl::StatusOr<std::vector<absl::StatusOr<bool>>> AddEach(
      absl::Span<const std::pair<absl::string_view, absl::string_view>> segment_user_pairs);
  // Removes the users in `user_ids` from `segment` in one batch (reason api), all or nothing.
  // Users who are not members, unknown ids and repeats are skipped. Returns how many were
  // removed. Errors: bad_request (a malformed id), segment_not_found, segment_is_computed.
  absl::StatusOr<uint64_t> RemoveMembers(absl::string_view segment,
                                         absl::Span<const absl::string_view> user_ids);

  // ----- Events, traits and rule segments (docs/rules.md) -----

  // Accepts events: each valid one is numbered, logged and applied to the rules' aggregates,
  // with its traits; the membership changes it causes are in the same batch (reason rule,
  // at now). A user first seen is registered. Invalid events are reported and skipped; an
  // event's `at` must lie within [now - retention, now + 5 min] (else "at_out_of_range").
  absl::StatusOr<IngestResult> Ingest(absl::Span<const EventInput> events);
  // Sets or removes traits (at now), registering the user if new. Errors: bad_request.
  absl::StatusOr<UserProfile> PatchTraits(absl::string_view user_id, const TraitPatch& patch);
  // Errors: user_not_found (never seen, or deleted).
  absl::StatusOr<UserProfile> Profile(absl::string_view user_id) const;
  // Acts on every rule deadline due now: time-driven entries and exits, each logged at its
  // exact moment. Returns the number of membership changes. Called every 100 ms.
  absl::StatusOr<uint64_t> ProcessRuleDeadlines();
  // Runs every pending backfill to its end (reading `EngineOptions::events` outside the lock,
  // inserting under it a chunk at a time), then swaps in every rule whose backfill is done.
  // Returns whether it did anything. Called by one thread (the server's backfill thread).
  // `stop`, once true, ends a scan early (the job stays pending; recovery completes it).
  absl::StatusOr<bool> RunBackfills(const std::atomic<bool>* stop = nullptr);
  // Validation of an event, without state. Also used by the server for single events.
  static absl::Status ValidateEventShape(const EventInput& event);
  // Counters for /metrics; waits for the writer lock briefly. With `walk`, also the state's
  // entries and bytes (visits every state: benchmarks and diagnostics only).
  RuleStats GetRuleStats(bool walk = false) const;

  // ----- Reads -----

  // OK if `user_id` is acceptable as a user id (1–256 bytes of UTF-8, no control characters);
  // else bad_request saying why. Every mutation checks this itself.
  static absl::Status ValidateUserId(absl::string_view user_id) {
    return UserDictionary::Validate(user_id);
  }
  // Errors: bad_request saying what is wrong with `name` as a segment name.
  static absl::Status ValidateSegmentName(absl::string_view name) {
    return SegmentCatalog::ValidateName(name);
  }

  // Errors: segment_not_found (unknown or deleted). An unknown user is simply not a member.
  absl::StatusOr<Membership> Check(absl::string_view segment, absl::string_view user_id) const;
  // One answer per (segment, user) pair; unknown or deleted segments answer false.
  std::vector<bool> CheckMany(
      absl::Span<const std::pair<absl::string_view, absl::string_view>> checks) const;
  // The hot path by internal ids: no catalog or dictionary lookup.
  bool Contains(SegmentId segment, UserId user) const { return shards_.Contains(segment, user); }
  // The user's memberships sorted by segment name; empty for an unknown user.
  std::vector<UserSegment> UserSegments(absl::string_view user_id) const;
  // Members in first-seen order, after `after` (any known user). Errors: segment_not_found,
  // bad_request (limit outside 1–100000, unknown `after`).
  absl::StatusOr<MemberPage> ListMembers(absl::string_view segment, uint32_t limit,
                                         std::optional<absl::string_view> after) const;
  // Up to `limit` members whose internal id is `start` or more, in id (first-seen) order: a
  // cursor that stays valid while members come and go (each member present throughout is
  // returned once). Errors: segment_not_found, bad_request (limit outside 1–100000).
  absl::StatusOr<MemberScan> ScanMembers(absl::string_view segment, uint64_t start,
                                         uint32_t limit) const;
  // Evaluates a set-algebra expression (expression.h). Returns the count and the first `limit`
  // users in first-seen order. Errors: bad_request with position, segment_not_found.
  absl::StatusOr<QueryResult> Query(absl::string_view expr, uint32_t limit) const;

  // The engine clock's current millisecond.
  TimeMs ClockNow() const { return clock_->NowMs(); }

  // The external id of internal user `id`. REQUIRES: id < Stats().known_users. The view stays
  // valid for the engine's lifetime (names never change).
  absl::string_view UserName(UserId id) const { return users_.Name(id); }
  // The name of segment `id`, active or deleted. REQUIRES: the id exists.
  std::string SegmentName(SegmentId id) const { return catalog_.Name(id); }

  // Internal ids, for benchmarks and the storage layer.
  std::optional<UserId> FindUser(absl::string_view user_id) const { return users_.Find(user_id); }
  std::optional<SegmentId> FindSegment(absl::string_view name) const {
    return catalog_.FindActive(name);
  }
  // Like FindSegment, but deleted segments count too (their history stays reportable).
  std::optional<SegmentId> FindSegmentEvenDeleted(absl::string_view name) const {
    return catalog_.Find(name);
  }

  // ----- Time -----

  // Expires every membership whose expires_at is at or before the clock's current millisecond:
  // one remove record per membership (reason ttl_expired, `at` = its expires_at), in order of
  // expiry, in sink batches of at most kMaxExpiryBatch records (each its own writer-lock
  // hold). Returns how many expired. Called every 100 ms, memberships end within about 100 ms
  // of their expiry (expiry_schedule.h). On a sink error the chunk that failed is kept for the
  // next call; chunks before it stay expired.
  // If the sink fails, nothing is removed and the same memberships are retried next call.
  absl::StatusOr<uint64_t> ProcessExpiries();

  // ----- Recovery and snapshots -----

  // Calls fn() while no mutation is in progress (under the writer lock): whatever the sink has
  // accepted is also applied. Used to read a log position that matches memory exactly.
  void AtQuiescentPoint(absl::FunctionRef<void()> fn) {
    MutexLock lock(&write_mu_);
    fn();
  }
  // Recovery: prepares the dictionary for about `users` users in all.
  void ReserveUsers(size_t users) {
    MutexLock lock(&write_mu_);
    users_.Reserve(users);
  }
  // Recovery: creates and registers the users first, first + 1, … named `names` (a block of
  // users created by one batch). Equivalent to ApplyRecovered of their kCreated events, with
  // one lock hold per dictionary and membership shard instead of one per user.
  absl::Status RecoverUsers(UserId first, absl::Span<const std::string> names);
  // Number of shards that may hold users (for CopyShard).
  uint32_t shard_count() const { return shards_.shard_count(); }
  // A copy of one shard's memberships and expiries (membership_shards.h).
  MembershipShards::ShardState CopyShard(uint32_t index) const { return shards_.CopyShard(index); }
  // Recovery: installs a shard copied earlier into this engine, which must have its
  // dictionaries loaded and no memberships in that shard yet. Schedules the expiries.
  absl::Status InstallShard(MembershipShards::ShardState state);

  // Applies a batch produced earlier by this engine's mutations, without the sink.
  absl::Status ApplyRecovered(const OpBatch& batch);
  // Recovery of rule state, after the memberships: `rules_through` (every deadline up to it
  // was acted on), then every retained event and every user's traits, then FinishRuleRecovery
  // with the number the next event gets. Every aggregate then holds what it would have held
  // had it run all along, so no backfill is left to read the log.
  void BeginRuleRecovery(TimeMs rules_through);
  void RecoverEvent(const Event& event);
  void RecoverTrait(const TraitChange& change);
  void FinishRuleRecovery(uint64_t next_event_seq);

  // Counters; never waits for the writer.
  EngineStats Stats() const;
  // Mutations in the write queue, including the group running now (tests).
  size_t TEST_QueuedMutations() { return write_queue_.TEST_Queued(); }
  // Byte counts of every structure. Diagnostic: walks every shard and waits for the writer
  // lock (for the wheel); do not call it on a hot path.
  EngineMemory Memory() const;

 private:
  // Runs `body` (a mutation's planning and Commit) under the writer lock, then, if anything
  // was committed, waits for the sink's durability outside the lock. When that wait blocks,
  // the mutation goes through the write queue instead: it runs in submission order, possibly
  // on another waiting thread, and its group shares one durability wait (write_queue.h).
  // `combine_key` (the user of a single-user mutation, or empty) lets the queue combine its
  // commit with others' (write_queue.h).
  template <typename Body>
  auto Durably(Body&& body, absl::string_view combine_key = {})
      -> decltype(body());  // detail/durably.h

  // Hands `batch` to the sink, then applies it; inside a combined commit, moves it into the
  // combined batch instead, for EndCombined. REQUIRES: write_mu_ held.
  // `plan_rules`: first append the rule changes the batch causes (PlanRuleEffects); false for
  // batches of rule deadlines, which plan their own.
  absl::Status Commit(OpBatch& batch, bool plan_rules = true)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // WriteQueue::Combiner, called by the queue's leader with write_mu_ held.
  bool BeginCombined() override ABSL_NO_THREAD_SAFETY_ANALYSIS;
  absl::Status EndCombined() override ABSL_NO_THREAD_SAFETY_ANALYSIS;
  // The id the next new user gets: after the dictionary's users and those the open combined
  // commit creates.
  UserId NextNewUserId() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    return static_cast<UserId>(users_.size() + combined_new_users_);
  }
  absl::Status ApplyBatch(const OpBatch& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Creates and registers users first, first + 1, … named `names`.
  absl::Status CreateUsers(UserId first, absl::Span<const absl::string_view> names)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  void ApplyMemberships(absl::Span<const OpRecord> records)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);

  // Resolves (or plans the creation of) a user for a mutation. Appends a kCreated or
  // kRegistered event and sticky auto-percent adds to `batch` when the user was not registered.
  // `skip_sticky` names segments the caller adds explicitly. *next_new_id is the id a new user
  // gets; it starts at NextNewUserId() for each batch and is advanced here.
  absl::StatusOr<UserId> PlanUser(absl::string_view user_id, TimeMs now, OpBatch& batch,
                                  absl::Span<const SegmentId> skip_sticky, UserId* next_new_id,
                                  bool* newly_registered) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // PlanUser for a batch that may name a user several times: `planned` remembers the ids
  // planned so far (its keys view the callers' strings).
  absl::StatusOr<UserId> PlanUserOnce(absl::string_view user_id, TimeMs now, OpBatch& batch,
                                      absl::Span<const SegmentId> skip_sticky, UserId* next_new_id,
                                      absl::flat_hash_map<absl::string_view, UserId>& planned)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // One chunk of ProcessExpiries; *more says whether more may be due.
  absl::StatusOr<uint64_t> ProcessExpiryChunk(bool* more);
  // Expiry of a new membership: explicit, or from a TTL, or the segment's default.
  TimeMs ExpiryFor(TimeMs now, std::optional<int64_t> ttl, std::optional<TimeMs> expires_at,
                   int64_t default_ttl_seconds) const;
  absl::Status ValidateTtl(std::optional<int64_t> ttl) const;
  SegmentInfo InfoOf(const SegmentMeta& meta) const;
  void PlanAutoPercent(const SegmentMeta& meta, TimeMs now, OpBatch& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // The adds or removes that move a sticky rollout from `old_percent` to meta.auto_percent.
  void PlanRamp(const SegmentMeta& meta, double old_percent, TimeMs now, OpBatch& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // The time of the mutation running now: read once per mutation, before it catches up with
  // rule deadlines, so that every part of it agrees.
  TimeMs Now() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) { return task_now_; }
  // Runs in every mutation before its body: plans and commits the rule changes due at
  // deadlines up to `now`, in batches, so that the body plans against an up-to-date state.
  absl::Status CatchUpRules(TimeMs now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Appends the rule changes `batch` causes (RuleSet::PlanEffects). REQUIRES: not combining.
  void PlanRuleEffects(OpBatch& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Checks a rule for segment `self` (nullopt: a new segment): syntax, types, limits, known
  // segments, no cycle.
  absl::Status ValidateRule(absl::string_view rule, std::optional<SegmentId> self) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Swaps in the pending rule of `segment`: logs the differences with its members now.
  absl::Status SwapInRule(SegmentId segment) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  void SetProgress(SegmentId segment, uint64_t done, uint64_t total);
  // Adds a trait change to `batch` if it wins over the user's value and the batch's earlier
  // change of that key (newest `at`; a tie goes to the later change).
  // Plans merging user `from` into `into` (AddAliases).
  void PlanMerge(UserId from, UserId into, OpBatch& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // The user whose events `user`'s now are: itself, or the survivor of its merges.
  UserId Survivor(UserId user) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  using TraitIndex = absl::flat_hash_map<std::pair<UserId, std::string>, size_t>;
  void AddTraitChange(OpBatch& batch, TraitChange change, TraitIndex& index) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  class RuleView;

  EngineOptions options_;
  NullSink null_sink_;
  OpSink* sink_;
  Clock* clock_;

  UserDictionary users_;
  SegmentCatalog catalog_;
  MembershipShards shards_;
  std::atomic<uint64_t> registered_count_{0};
  std::atomic<uint64_t> expired_total_{0};
  // The wheel's pending count, published by the writer so that Stats() never waits for it.
  std::atomic<uint64_t> pending_expiries_{0};

  mutable Mutex write_mu_;
  ExpirySchedule expiries_ ABSL_GUARDED_BY(write_mu_);
  std::mt19937_64 rng_ ABSL_GUARDED_BY(write_mu_);
  std::vector<MembershipShards::Applied> applied_scratch_ ABSL_GUARDED_BY(write_mu_);
  uint64_t commits_ ABSL_GUARDED_BY(write_mu_) = 0;  // batches committed, for Durably
  // The open combined commit: whether one is open, what its tasks committed, and how many users
  // they create.
  bool combining_ ABSL_GUARDED_BY(write_mu_) = false;
  OpBatch combined_ ABSL_GUARDED_BY(write_mu_);
  size_t combined_new_users_ ABSL_GUARDED_BY(write_mu_) = 0;
  // RunGathered's state, on the thread that runs it (which holds write_mu_ throughout).
  struct Gathering {
    std::vector<absl::Status>* outcomes = nullptr;
    size_t current = 0;                     // the call running
    bool combining = false;                 // a combined batch is open
    absl::flat_hash_set<std::string> keys;  // users in it
    std::vector<size_t> members;            // calls whose mutation joined it
  };
  Gathering* gathering_ ABSL_GUARDED_BY(write_mu_) = nullptr;
  // Whether this thread is inside this engine's RunGathered (so holds write_mu_).
  bool GatheringHere() const;
  // Runs a Durably task inside RunGathered (see there). REQUIRES: GatheringHere(), whose
  // thread holds write_mu_ (the analysis cannot follow that, so it is not annotated).
  void RunGatheredTask(WriteQueue::Task& task);
  void EndGatheredBatch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Active sticky segments, recomputed after any batch that changes segment metadata: every
  // newly registered user is checked against them, so they are not re-listed per user.
  const std::vector<SegmentMeta>& StickySegments() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  std::vector<SegmentMeta> sticky_ ABSL_GUARDED_BY(write_mu_);
  bool sticky_valid_ ABSL_GUARDED_BY(write_mu_) = false;

  rules::RuleSet rules_ ABSL_GUARDED_BY(write_mu_);
  uint64_t next_event_seq_ ABSL_GUARDED_BY(write_mu_) = 1;
  // Merged users and who they were merged into.
  absl::flat_hash_map<UserId, UserId> merged_into_ ABSL_GUARDED_BY(write_mu_);
  TimeMs task_now_ ABSL_GUARDED_BY(write_mu_) = 0;
  std::atomic<uint64_t> events_accepted_{0};
  std::atomic<uint64_t> rule_changes_{0};
  std::atomic<uint64_t> backfills_running_{0};
  // Backfill progress by segment, for GetSegment.
  mutable Mutex progress_mu_;
  absl::flat_hash_map<SegmentId, std::pair<uint64_t, uint64_t>> progress_
      ABSL_GUARDED_BY(progress_mu_);

  WriteQueue write_queue_{&write_mu_, sink_, this};
  // WhenDurable's thread, when the sink's durability wait blocks. Last, so destroyed first: it
  // answers what is pending (after a last sync) while everything else still exists.
  std::unique_ptr<detail::DurabilityNotifier> notifier_;
};

}  // namespace segd::engine
