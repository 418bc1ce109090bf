/** Whether CNI_NETNS is the namespace this plugin runs in: adding a pod there would rewire the host. */
import { statSync } from "node:fs";

export function netnsIsOwn(netns: string): boolean {
  if (netns === "") return false;
  try {
    const target = statSync(netns);
    const own = statSync("/proc/self/ns/net");
    return target.dev === own.dev && target.ino === own.ino;
  } catch {
    return false; // a missing netns is the delegate's to report
  }
}
