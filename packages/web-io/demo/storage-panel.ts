// "Models kept in this browser": the origin's quota and usage, whether the browser promised to keep the
// data (navigator.storage.persist), and every model in OPFS with its size, to load or delete.
import type { FlashWorkerClient } from "../src/client.js";
import type { StorageInfo } from "../src/protocol.js";
import { formatBytes } from "../src/util.js";

export interface StorageHooks {
  engine(): FlashWorkerClient;
  /** The user wants to load this stored model. */
  use(name: string): void;
  /** Called before a model is deleted (the page unloads it if it is the loaded one). */
  beforeDelete(name: string): Promise<void>;
  /** The list changed (the page's model picker shows it too). */
  changed(info: StorageInfo): void;
  error(e: unknown): void;
}

export class StoragePanel {
  last: StorageInfo | undefined;

  constructor(
    private readonly el: (id: string) => HTMLElement,
    private readonly hooks: StorageHooks,
  ) {
    el("persist").addEventListener("click", () => void this.persist());
  }

  /** Re-reads quota and files from the worker and redraws. */
  async refresh(): Promise<StorageInfo | undefined> {
    let info: StorageInfo;
    try {
      info = await this.hooks.engine().storage();
    } catch (e) {
      this.el("quota").textContent = `This browser's storage cannot be read here: ${(e as Error)?.message ?? e}`;
      return undefined;
    }
    this.last = info;
    const share = info.quota > 0 ? info.usage / info.quota : 0;
    this.el("quota").textContent = `This site uses ${formatBytes(info.usage)} of the ${formatBytes(info.quota)} the browser allows it (${(100 * share).toFixed(share < 0.01 ? 2 : 0)}%); ${formatBytes(info.available)} free.`;
    (this.el("quota-meter") as HTMLMeterElement).value = share;
    this.showPersisted(info.persisted);
    const body = this.el("stored").querySelector("tbody")!;
    body.replaceChildren(...info.files.map((f) => this.row(f)));
    this.el("stored").hidden = info.files.length === 0;
    this.el("stored-empty").hidden = info.files.length > 0;
    this.hooks.changed(info);
    return info;
  }

  /** Asks the browser to keep this site's data under storage pressure (it may say no). */
  async persist(): Promise<boolean> {
    const granted = (await navigator.storage?.persist?.().catch(() => false)) ?? false;
    this.showPersisted(granted, true);
    return granted;
  }

  private showPersisted(persisted: boolean, asked = false): void {
    this.el("persist-status").textContent = persisted
      ? "The browser keeps these models even when disk space runs low."
      : asked
        ? "The browser did not promise to keep them (it decides from how you use the site): it may delete them when disk space runs low."
        : "The browser may delete these models when disk space runs low.";
    (this.el("persist") as HTMLButtonElement).hidden = persisted;
  }

  private row(f: StorageInfo["files"][number]): HTMLTableRowElement {
    const tr = document.createElement("tr");
    const name = document.createElement("td");
    name.textContent = f.complete ? f.name : `${f.name} (copy interrupted: loading it again resumes the copy)`;
    const size = document.createElement("td");
    size.textContent = formatBytes(f.bytes);
    const actions = document.createElement("td");
    actions.className = "row-actions";
    const use = button("Load", `Load ${f.name}`, () => this.hooks.use(f.name));
    use.disabled = !f.complete;
    const del = button("Delete", `Delete ${f.name}`, async () => {
      del.disabled = true;
      try {
        await this.hooks.beforeDelete(f.name);
        await this.hooks.engine().removeFromOpfs(f.name);
      } catch (e) {
        this.hooks.error(e);
      }
      await this.refresh();
    });
    del.classList.add("secondary");
    actions.append(use, del);
    tr.append(name, size, actions);
    tr.dataset.name = f.name;
    return tr;
  }
}

function button(text: string, label: string, onClick: () => void): HTMLButtonElement {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}
