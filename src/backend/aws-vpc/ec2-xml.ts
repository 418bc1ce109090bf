/**
 * Reading the EC2 Query API's XML responses (pure). EC2 answers with plain elements, no attributes that
 * matter (only xmlns), no CDATA and the five predefined entities, so a small element tree is enough; a
 * general XML library would be a dependency for nothing.
 */

export interface XmlElement {
  readonly name: string;
  readonly children: XmlElement[];
  text: string;
}

const ENTITIES: Readonly<Record<string, string>> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function decodeText(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, e: string) =>
    e.startsWith("#x")
      ? String.fromCodePoint(Number.parseInt(e.slice(2), 16))
      : e.startsWith("#")
        ? String.fromCodePoint(Number.parseInt(e.slice(1), 10))
        : (ENTITIES[e] ?? ""),
  );
}

/** Parses a document into its root element; throws on text that is not well-formed enough to read. */
export function parseXml(xml: string): XmlElement {
  const root: XmlElement = { name: "#document", children: [], text: "" };
  const stack: XmlElement[] = [root];
  const tag = /<(\/?)([A-Za-z_][\w.:-]*)[^>]*?(\/?)>|<\?[^>]*\?>|<!--[\s\S]*?-->/g;
  let last = 0;
  for (let m = tag.exec(xml); m; m = tag.exec(xml)) {
    const top = stack[stack.length - 1]!;
    top.text += decodeText(xml.slice(last, m.index));
    last = tag.lastIndex;
    if (m[2] === undefined) continue; // declaration or comment
    const name = m[2].replace(/^.*:/, "");
    if (m[1]) {
      if (top.name !== name || stack.length === 1) throw new Error(`malformed XML: unexpected </${name}>`);
      top.text = top.text.trim();
      stack.pop();
    } else {
      const element: XmlElement = { name, children: [], text: "" };
      top.children.push(element);
      if (!m[3]) stack.push(element);
    }
  }
  if (stack.length !== 1) throw new Error(`malformed XML: <${stack[stack.length - 1]!.name}> is not closed`);
  const first = root.children[0];
  if (!first) throw new Error("malformed XML: no element");
  return first;
}

export function child(element: XmlElement | undefined, name: string): XmlElement | undefined {
  return element?.children.find((c) => c.name === name);
}

export function childText(element: XmlElement | undefined, name: string): string | undefined {
  const c = child(element, name);
  return c === undefined ? undefined : c.text;
}

/** The <item>s of a list element such as <routeTableSet>. */
export function items(element: XmlElement | undefined, listName: string): XmlElement[] {
  return child(element, listName)?.children.filter((c) => c.name === "item") ?? [];
}

/** One route of a route table, as DescribeRouteTables lists it. */
export interface Ec2Route {
  readonly destinationCidrBlock: string | undefined;
  readonly instanceId: string | undefined;
  readonly networkInterfaceId: string | undefined;
  readonly gatewayId: string | undefined;
  /** "active" or "blackhole" (the target is gone). */
  readonly state: string | undefined;
  /** "CreateRouteTable" (the local route), "CreateRoute", "EnableVgwRoutePropagation". */
  readonly origin: string | undefined;
}

export interface Ec2RouteTable {
  readonly routeTableId: string;
  readonly vpcId: string | undefined;
  readonly routes: readonly Ec2Route[];
}

export function parseRouteTables(xml: string): Ec2RouteTable[] {
  const doc = parseXml(xml);
  return items(doc, "routeTableSet").map((t) => ({
    routeTableId: childText(t, "routeTableId") ?? "",
    vpcId: childText(t, "vpcId"),
    routes: items(t, "routeSet").map((r) => ({
      destinationCidrBlock: childText(r, "destinationCidrBlock"),
      instanceId: childText(r, "instanceId"),
      networkInterfaceId: childText(r, "networkInterfaceId"),
      gatewayId: childText(r, "gatewayId"),
      state: childText(r, "state"),
      origin: childText(r, "origin"),
    })),
  }));
}

export interface Ec2Instance {
  readonly instanceId: string;
  readonly subnetId: string | undefined;
  readonly vpcId: string | undefined;
  readonly privateIpAddress: string | undefined;
  readonly sourceDestCheck: boolean | undefined;
}

export function parseInstances(xml: string): Ec2Instance[] {
  const doc = parseXml(xml);
  return items(doc, "reservationSet").flatMap((r) =>
    items(r, "instancesSet").map((i) => {
      const check = childText(i, "sourceDestCheck");
      return {
        instanceId: childText(i, "instanceId") ?? "",
        subnetId: childText(i, "subnetId"),
        vpcId: childText(i, "vpcId"),
        privateIpAddress: childText(i, "privateIpAddress"),
        sourceDestCheck: check === undefined ? undefined : check === "true",
      };
    }),
  );
}

/** <return>true</return> of CreateRoute, DeleteRoute, ModifyInstanceAttribute... */
export function parseReturn(xml: string): boolean {
  return childText(parseXml(xml), "return") === "true";
}

export interface Ec2ErrorDetail {
  readonly code: string;
  readonly message: string;
  readonly requestId: string | undefined;
}

/** EC2's error body: <Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>. */
export function parseEc2Error(xml: string): Ec2ErrorDetail | undefined {
  let doc: XmlElement;
  try {
    doc = parseXml(xml);
  } catch {
    return undefined;
  }
  const error = child(child(doc, "Errors"), "Error") ?? (doc.name === "Error" ? doc : undefined);
  const code = childText(error, "Code");
  if (!code) return undefined;
  return {
    code,
    message: childText(error, "Message") ?? "",
    requestId: childText(doc, "RequestID") ?? childText(doc, "RequestId"),
  };
}
