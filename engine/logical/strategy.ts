/**
 * Strategy `logical`: `sync` copies under an exported snapshot and streams
 * every later change through a native subscription; `cutover` fences writes,
 * waits for the last change, copies what replication does not carry, verifies,
 * removes the replication artefacts and reports the write-blackout; `cleanup`
 * removes every artefact. State lives in the target's `pgrelocate` schema, so a
 * killed sync resumes and any process can read the status.
 */
export { resolveLogicalOptions, type LogicalMeta, type LogicalOptions } from './run-options';
export { copyOnce, sync, waitForLag, type CopyReport, type SyncReport } from './sync';
export { cutover, type CutoverReport } from './cutover';
export { cleanupLogical, logicalStatus, type LogicalStatus } from './cleanup';
