/**
 * Device names and indexes as the kernel kinds need them: entries name their device, netlink speaks in
 * indexes. Re-listed before every full run and kept current from link notifications in between.
 */
import type { RtEvent, RtNetlink } from "../../netlink/index.js";

/** A put for an entry whose device does not exist (yet): fails alone, the other entries go on. */
export class MissingDeviceError extends Error {
  override name = "MissingDeviceError";
  constructor(readonly device: string) {
    super(`device ${device} does not exist`);
  }
}

export class LinkNames {
  private indexByName = new Map<string, number>();
  private nameByIndex = new Map<number, string>();

  constructor(private readonly netlink: RtNetlink) {}

  async refresh(): Promise<void> {
    const links = await this.netlink.linkList();
    this.indexByName = new Map(links.map((l) => [l.name, l.index]));
    this.nameByIndex = new Map(links.map((l) => [l.index, l.name]));
  }

  /** Keeps names current between full runs (a device made or renamed since the last dump). */
  noteEvent(event: RtEvent): void {
    if (event.kind !== "link" || event.action !== "new") return;
    this.nameByIndex.set(event.link.index, event.link.name);
    this.indexByName.set(event.link.name, event.link.index);
  }

  nameOf(index: number | undefined): string | undefined {
    return index === undefined ? undefined : this.nameByIndex.get(index);
  }

  findIndex(name: string): number | undefined {
    return this.indexByName.get(name);
  }

  indexOf(name: string): number {
    const index = this.indexByName.get(name);
    if (index === undefined) throw new MissingDeviceError(name);
    return index;
  }
}
