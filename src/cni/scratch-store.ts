/**
 * dataDir/<containerID>: the delegate config saved by ADD so DEL can replay it after the subnet.env or the
 * network config changed. Written and fsynced as upstream writes it; a file that already exists (a repeated
 * ADD) is replaced through a temp name and a rename, so the config DEL needs is never half-overwritten.
 */
import {
  closeSync,
  constants,
  fsyncSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { makeDirectories } from "../fs/make-directories.js";
import { errnoCode } from "./go-errors.js";

export function scratchPath(dataDir: string, containerID: string): string {
  return join(dataDir, containerID);
}

/** Writes all of data, syncs it, and closes fd whatever happens. */
function writeSyncedAndClose(fd: number, data: Buffer): void {
  try {
    let done = 0;
    while (done < data.length) done += writeSync(fd, data, done, data.length - done);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function saveScratch(dataDir: string, containerID: string, bytes: string): void {
  makeDirectories(dataDir, 0o700);
  const path = scratchPath(dataDir, containerID);
  const data = Buffer.from(bytes, "utf8");
  // A new container's file is created in place and synced, like upstream's: one fsync makes the bytes and
  // the new name durable together. Cut short (a kill mid-write), it is a prefix of one JSON object, which
  // DEL reads as nothing to replay, as it would upstream's.
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (err) {
    if (errnoCode(err) !== "EEXIST") throw err;
    replaceScratch(dataDir, path, data);
    return;
  }
  try {
    writeSyncedAndClose(fd, data);
  } catch (err) {
    removeQuietly(path);
    throw err;
  }
}

/** Replaces an existing file: the old bytes or the new ones are there, whatever happens meanwhile. */
function replaceScratch(dataDir: string, path: string, data: Buffer): void {
  // Container IDs start with an alphanumeric, so a dot-name can never collide with a real entry. The
  // name does not contain the ID: an ID of up to 255 bytes (a file name's limit) must work, as upstream's.
  // The pid keeps concurrent plugins apart.
  const temp = scratchPath(dataDir, `.${process.pid}.tmp`);
  const fd = openSync(temp, "w", 0o600);
  try {
    writeSyncedAndClose(fd, data);
    renameSync(temp, path);
  } catch (err) {
    removeQuietly(temp);
    throw err;
  }
  syncDir(dataDir);
}

/** The saved bytes, or undefined when there are none (DEL of an unknown container succeeds). */
export function readScratch(dataDir: string, containerID: string): Buffer | undefined {
  try {
    return readFileSync(scratchPath(dataDir, containerID));
  } catch (err) {
    const code = errnoCode(err);
    // ENAMETOOLONG: no file can have this name, so none was saved.
    if (code === "ENOENT" || code === "ENOTDIR" || code === "ENAMETOOLONG") return undefined;
    throw err;
  }
}

export function removeScratch(dataDir: string, containerID: string): void {
  removeQuietly(scratchPath(dataDir, containerID));
}

/** Container IDs with a saved config (hidden temp files excluded). */
export function listScratch(dataDir: string): string[] {
  try {
    return readdirSync(dataDir, { withFileTypes: true })
      .filter((e) => e.isFile() && !e.name.startsWith("."))
      .map((e) => e.name);
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return [];
    throw err;
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone, or not ours to remove: per spec DEL carries on.
  }
}

/** Makes the rename durable; a failure here does not undo a written file. */
function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some filesystems refuse fsync on directories; the file itself is already synced.
  }
}
