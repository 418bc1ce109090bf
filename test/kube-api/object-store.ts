/**
 * The objects the test API server holds, with one resourceVersion counter for everything (as etcd's
 * revision) and a bounded history of events so a watch can resume from a resourceVersion. A watch from a
 * resourceVersion older than the history answers 410 Gone, as the real API does after compaction.
 */
import { randomUUID } from "node:crypto";
import { clone, type JsonObject } from "./json-value.js";
import { apiVersionOf, type ResourceType } from "./resources.js";

export type EventType = "ADDED" | "MODIFIED" | "DELETED";

export interface StoredEvent {
  readonly rv: number;
  readonly type: EventType;
  readonly resource: ResourceType;
  readonly object: JsonObject;
}

export interface Subscriber {
  readonly resource: ResourceType;
  readonly matches: (object: JsonObject) => boolean;
  readonly send: (type: EventType, object: JsonObject) => void;
}

function metadataOf(object: JsonObject): JsonObject {
  return object.metadata as JsonObject;
}

function keyOf(namespace: string | undefined, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

export class ObjectStore {
  private rv = 1;
  private readonly objects = new Map<ResourceType, Map<string, JsonObject>>();
  private history: StoredEvent[] = [];
  /** Events up to and including this resourceVersion are no longer in the history. */
  private compactedThrough = 0;
  private readonly subscribers = new Set<Subscriber>();

  constructor(private readonly historyLimit: number) {}

  get resourceVersion(): number {
    return this.rv;
  }

  private table(resource: ResourceType): Map<string, JsonObject> {
    let table = this.objects.get(resource);
    if (!table) {
      table = new Map();
      this.objects.set(resource, table);
    }
    return table;
  }

  get(resource: ResourceType, namespace: string | undefined, name: string): JsonObject | undefined {
    const object = this.table(resource).get(keyOf(namespace, name));
    return object ? clone(object) : undefined;
  }

  /** Objects of a type (in one namespace when given), sorted as the real API (by namespace, then name). */
  list(resource: ResourceType, namespace: string | undefined): JsonObject[] {
    const entries = [...this.table(resource).entries()].filter(
      ([key]) => !namespace || key.startsWith(`${namespace}/`),
    );
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return entries.map(([, object]) => clone(object));
  }

  /** Stamps identity fields on a new object as the API server does (without storing it). */
  prepareCreate(resource: ResourceType, object: JsonObject): JsonObject {
    const result = clone(object);
    const metadata = metadataOf(result);
    metadata.uid = randomUUID();
    metadata.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    result.apiVersion = apiVersionOf(resource);
    result.kind = resource.kind;
    delete metadata.resourceVersion;
    return result;
  }

  create(resource: ResourceType, object: JsonObject): JsonObject {
    return this.store(resource, object, "ADDED");
  }

  update(resource: ResourceType, object: JsonObject): JsonObject {
    return this.store(resource, object, "MODIFIED");
  }

  /** Saves a copy with the next resourceVersion and records the watch event. */
  private store(resource: ResourceType, object: JsonObject, event: "ADDED" | "MODIFIED"): JsonObject {
    const metadata = metadataOf(object);
    const stored = clone(object);
    metadataOf(stored).resourceVersion = String(++this.rv);
    this.table(resource).set(
      keyOf(metadata.namespace as string | undefined, metadata.name as string),
      stored,
    );
    this.record(event, resource, stored);
    return clone(stored);
  }

  delete(resource: ResourceType, namespace: string | undefined, name: string): JsonObject | undefined {
    const table = this.table(resource);
    const key = keyOf(namespace, name);
    const object = table.get(key);
    if (!object) return undefined;
    table.delete(key);
    // The DELETED event carries the object at a new resourceVersion, as etcd's delete revision.
    const last = clone(object);
    metadataOf(last).resourceVersion = String(++this.rv);
    this.record("DELETED", resource, last);
    return clone(last);
  }

  private record(type: EventType, resource: ResourceType, object: JsonObject): void {
    const event: StoredEvent = { rv: this.rv, type, resource, object };
    this.history.push(event);
    while (this.history.length > this.historyLimit) this.compactedThrough = this.history.shift()!.rv;
    for (const subscriber of this.subscribers) {
      if (subscriber.resource === resource && subscriber.matches(object))
        subscriber.send(type, clone(object));
    }
  }

  /** Drops the whole event history, as an etcd compaction: watches from any older resourceVersion get 410. */
  compact(): void {
    this.history = [];
    this.compactedThrough = this.rv;
  }

  /**
   * Subscribes from a resourceVersion: replays the retained events after it, then follows live ones. Returns
   * undefined when the history no longer reaches back that far (the caller answers 410 Gone).
   */
  watchFrom(fromRv: number, subscriber: Subscriber): (() => void) | undefined {
    if (fromRv < this.compactedThrough) return undefined;
    for (const event of this.history) {
      if (event.rv > fromRv && event.resource === subscriber.resource && subscriber.matches(event.object))
        subscriber.send(event.type, clone(event.object));
    }
    return this.follow(subscriber);
  }

  /** Follows live events only (after the caller sent the current state). */
  follow(subscriber: Subscriber): () => void {
    this.subscribers.add(subscriber);
    return () => this.subscribers.delete(subscriber);
  }

  get oldestResourceVersion(): number {
    return this.compactedThrough;
  }
}
