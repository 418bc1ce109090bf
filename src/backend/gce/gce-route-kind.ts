/**
 * The routes of our GCE network as a kind of managed state: readActual lists them through the API, put
 * inserts (a route pointing elsewhere is deleted first: GCE routes are immutable), remove deletes. The
 * API is eventually consistent: a route just inserted may be missing from routes.list for a while, so
 * routes we created are remembered until listed (or LIST_LAG_MS has passed) and meanwhile looked up
 * with routes.get, which is consistent: a full run neither inserts them again nor misses a delete.
 */
import type { IPNetwork } from "../../ip/ip-network.js";
import type { StateKind } from "../../reconcile/state-kind.js";
import { type ComputeClient, explainApiError, GceApiError } from "./gce-api.js";
import { decodeRoute, encodeRoute, type GceRouteEntry, gceRouteShape, ownsRoute } from "./gce-route.js";

const LIST_LAG_MS = 60_000;

export interface GceRouteRole {
  /** Our own route's name (undefined before the lease). */
  ownName: string | undefined;
  /** Whether we remove routes of gone leases (see isSweeper). */
  sweeper: boolean;
}

export function gceRouteKind(
  api: () => ComputeClient,
  networkUrl: () => string,
  role: () => GceRouteRole,
  log: (message: string) => void,
  now: () => number = Date.now,
): StateKind<GceRouteEntry> {
  /** Routes we inserted, by name, with when, until routes.list shows them. */
  const inserted = new Map<string, { entry: GceRouteEntry; at: number }>();

  const insert = async (compute: ComputeClient, entry: GceRouteEntry): Promise<void> => {
    try {
      await compute.waitOperation(await compute.insertRoute(encodeRoute(entry, networkUrl())));
    } catch (err) {
      if (!(err instanceof GceApiError && (err.status === 409 || err.reason === "alreadyExists")))
        throw explainApiError(err, "insert", compute.project);
      // It exists (maybe from our own earlier try, listed late): ours is success, another's is replaced.
      const existing = decodeRoute(await compute.getRoute(entry.name));
      if (existing && gceRouteShape.same(existing, entry)) return;
      log(`GCE route ${entry.name} points at ${existing?.nextHopInstance ?? "?"}: replacing it`);
      await remove(compute, entry.name);
      await compute.waitOperation(await compute.insertRoute(encodeRoute(entry, networkUrl())));
    }
  };

  const remove = async (compute: ComputeClient, name: string): Promise<void> => {
    try {
      await compute.waitOperation(await compute.deleteRoute(name));
    } catch (err) {
      if (err instanceof GceApiError && err.status === 404) return; // already gone
      throw explainApiError(err, "delete", compute.project);
    }
  };

  return {
    ...gceRouteShape,
    layer: 1,
    owns(entry, scope) {
      const { ownName, sweeper } = role();
      const networks: readonly IPNetwork[] = scope.networks;
      return ownsRoute(entry, ownName, sweeper, networks, now());
    },
    async readActual() {
      const compute = api();
      let listed: GceRouteEntry[];
      try {
        listed = (await compute.listRoutes(networkUrl())).flatMap((r) => decodeRoute(r) ?? []);
      } catch (err) {
        throw explainApiError(err, "list", compute.project);
      }
      const names = new Set(listed.map((r) => r.name));
      for (const [name, memo] of inserted) {
        if (names.has(name) || now() - memo.at > LIST_LAG_MS) {
          inserted.delete(name);
          continue;
        }
        // Not listed yet: routes.get is consistent, so ask it whether the route exists (or was deleted since).
        const found = await compute.getRoute(name).then(decodeRoute, (err: unknown) => {
          if (err instanceof GceApiError && err.status === 404) return undefined;
          throw explainApiError(err, "get", compute.project);
        });
        if (found) listed.push(found);
        else inserted.delete(name);
      }
      return listed;
    },
    async put(entry) {
      if (entry.nextHopInstance === undefined) return; // a live peer's route: its agent makes it
      const compute = api();
      // insert() replaces a route of this name that points elsewhere (409, then delete + insert).
      await insert(compute, entry);
      inserted.set(entry.name, { entry, at: now() });
    },
    async remove(entry) {
      // The reconciler also removes entries of an earlier desired state. A peer's route we tolerated as
      // the sweeper is removed only while we still sweep; when another agent became the sweeper (a lower
      // subnet appeared) it is no longer ours to touch.
      const { ownName, sweeper } = role();
      if (entry.name !== ownName && !sweeper) return;
      inserted.delete(entry.name);
      await remove(api(), entry.name);
    },
  };
}
