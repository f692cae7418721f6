/** The services a process shares between its API and its workers, built once at startup. */
import type { BlobStore } from "./blob/blob-store.js";
import type { Limits } from "./config.js";
import type { EventBus } from "./events.js";
import type { Logger } from "./logger.js";
import type { Store } from "./store/store.js";

export interface AppContext {
  store: Store;
  blobs: BlobStore;
  limits: Limits;
  events: EventBus;
  logger: Logger;
}
