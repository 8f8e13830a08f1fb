/** Types of server.mjs, for the tests that start it. */
export const MODES: readonly string[];
export const COEP: readonly string[];

export interface DemoServerOptions {
  port?: number;
  host?: string;
  /** name → path of .flm files served under /models/ and /test/<mode>/ (default: the shipped model). */
  models?: Record<string, string>;
  noRange?: boolean;
  truncate?: number;
  slowMs?: number;
  cacheDir?: string;
  /** Cross-Origin-Embedder-Policy of every response (default "credentialless"; "none": no COOP/COEP). */
  coep?: "credentialless" | "require-corp" | "none";
}

export interface ModelRequestLog {
  path: string;
  mode: string;
  range: string | null;
  status: number;
  /** Body bytes sent. */
  sent: number;
  /** Whether the response was sent in full (false: the client cancelled it, or the server cut it). */
  complete: boolean;
}

export interface DemoServer {
  url: string;
  port: number;
  models: Record<string, string>;
  log: ModelRequestLog[];
  close(): Promise<void>;
}

export function ensureShippedModel(cacheDir?: string): Promise<string>;
/** stories260K-relu converted and calibrated (cached after the first call). */
export function ensureSparseModel(cacheDir?: string, log?: (line: string) => void): Promise<string>;
/** Every shipped model: { name: path }. */
export function ensureShippedModels(cacheDir?: string): Promise<Record<string, string>>;
export function startDemoServer(options?: DemoServerOptions): Promise<DemoServer>;
