// The ready-made worker module (dist/worker.js): the engine, the SDK and its kernels in one file.
import { hostFlashWorker } from "./host.js";

hostFlashWorker();
