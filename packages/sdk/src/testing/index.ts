/** Test helpers shipped with the SDK, for users' own tests of code that reads models. */
export { FaultInjectingSource, FAULT_KINDS, mulberry32 } from "./fault-injecting-source.js";
export type { FaultInjectingOptions, FaultKind, FaultStats, InjectedFault, ReadCall } from "./fault-injecting-source.js";
