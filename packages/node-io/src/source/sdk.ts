// The one place this folder imports the SDK from, so the built bundle shares the SDK's error classes
// (instanceof works across packages) instead of copying them.
export { AbortedError, SourceError, throwIfAborted } from "@flashllm/sdk";
export type { FlashSource, ReadRequest } from "@flashllm/sdk";
