/* The chat page's state: one object, owned here, read and changed by the page's modules.
 * Maps and lists are changed in place; nothing else keeps a copy of them. */

// Run statuses: ACTIVE_RUN can be stopped; OPEN_RUN has not ended (waiting: for an approval).
export const ACTIVE_RUN = new Set(['queued', 'running']);
export const OPEN_RUN = new Set(['queued', 'running', 'waiting']);

export const state = {
  conversationId: '', // main.js reads it from the page
  conversation: null,
  notFound: false,
  creating: false,
  // sidebar
  conversations: [],
  nextCursor: null,
  query: '',
  listRequest: 0,
  loadingMore: false,
  listLoaded: false,
  renamingId: null,
  sidebarDirty: false,
  // socket
  ws: null,
  wsOpened: false,
  synced: false,
  lastSeq: null,
  attempts: 0,
  reconnectTimer: null,
  pingTimer: null,
  lastFrameAt: 0,
  // view
  messages: new Map(), // id -> Message
  messageEls: new Map(), // id -> element
  approvals: new Map(), // id -> Approval
  deciding: new Map(), // approval id -> {decision, timer}: a decision in flight
  reuseCards: null, // approval cards kept across a snapshot (open forms, typed text)
  revealApproval: '', // approval id from #approval-<id>, to scroll to once shown
  lastSent: null, // {type, approvalId?}: the last frame sent that the server may refuse
  activeRun: null,
  cancelling: null,
  // runs of the shown turns (run frames, snapshot.runs): their turns, models, usage, failures
  runs: new Map(), // run id -> Run
  runTurns: new Map(), // run id -> its turn (microseconds of its user message's turn_at)
  latestRuns: new Map(), // user message id -> the latest Run that answers it
  lastReplies: new Map(), // run id -> id of its last assistant message shown
  retrying: '', // id of the failed run whose run.retry is unanswered
  // model picker (GET /api/models/)
  models: null, // {default, ids}
  newChatModel: '', // the model chosen before the conversation exists
  modelRequest: 0,
  outbox: [], // {convId, content, clientId, sentCount, knownIds, sentOn}
  stick: true,
  // branches (edit / regenerate / switch versions)
  branchId: null, // the shown branch (snapshot.branch_id), null if never forked
  snapshotGen: 0, // grows with each snapshot: drops stale HTTP answers
  olderCursor: null, // where the page before the oldest message shown starts (null: none)
  olderLoading: null, // the promise of that page while it is fetched
  editing: null, // {messageId, draft, clientId}: a user message being edited inline
  branchPending: null, // {type, messageId, ws, timer, focus}: a fork or switch sent, not yet answered
};

export function runIsActive() {
  return !!(state.activeRun && ACTIVE_RUN.has(state.activeRun.status));
}
