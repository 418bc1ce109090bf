/**
 * The EC2 Query API's requests (pure): an Action, the API version and flattened parameters
 * (Filter.1.Name, Filter.1.Value.1, ...), sent as an application/x-www-form-urlencoded POST body.
 */

export const EC2_API_VERSION = "2016-11-15";

export type Ec2Params = Readonly<Record<string, string>>;

export interface Ec2Filter {
  readonly name: string;
  readonly values: readonly string[];
}

export function filterParams(filters: readonly Ec2Filter[]): Record<string, string> {
  const params: Record<string, string> = {};
  filters.forEach((f, i) => {
    params[`Filter.${i + 1}.Name`] = f.name;
    f.values.forEach((v, j) => {
      params[`Filter.${i + 1}.Value.${j + 1}`] = v;
    });
  });
  return params;
}

export function listParams(prefix: string, values: readonly string[]): Record<string, string> {
  return Object.fromEntries(values.map((v, i) => [`${prefix}.${i + 1}`, v]));
}

/** RFC 3986 encoding, as SigV4 and EC2 expect (encodeURIComponent leaves !'()* alone). */
export function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

export function queryBody(action: string, params: Ec2Params): string {
  const all: Record<string, string> = { Action: action, Version: EC2_API_VERSION, ...params };
  return Object.keys(all)
    .sort()
    .map((k) => `${uriEncode(k)}=${uriEncode(all[k]!)}`)
    .join("&");
}

/** Parses a form body back into its parameters (the stand-in reads requests with it). */
export function parseQueryBody(body: string): Record<string, string> {
  const params: Record<string, string> = {};
  for (const part of body.split("&")) {
    if (!part) continue;
    const eq = part.indexOf("=");
    const key = decodeURIComponent((eq < 0 ? part : part.slice(0, eq)).replace(/\+/g, " "));
    params[key] = eq < 0 ? "" : decodeURIComponent(part.slice(eq + 1).replace(/\+/g, " "));
  }
  return params;
}

export function routeParams(
  routeTableId: string,
  destination: string,
  instanceId?: string,
): Record<string, string> {
  const params: Record<string, string> = { RouteTableId: routeTableId, DestinationCidrBlock: destination };
  if (instanceId !== undefined) params.InstanceId = instanceId;
  return params;
}
