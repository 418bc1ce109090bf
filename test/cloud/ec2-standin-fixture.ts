/** A small VPC for tests: three instances in one subnet, the subnet's own table and the main table. */
import type { StandinInstance, StandinOptions, StandinRouteTable } from "./ec2-standin.js";

export const TEST_ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE";
export const TEST_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
export const ROLE_ACCESS_KEY = "ASIAROLEEXAMPLE00001";

export function testInstances(addresses: readonly string[]): StandinInstance[] {
  return addresses.map((ip, n) => ({
    instanceId: `i-0${String(n + 1).padStart(16, "0")}`,
    privateIp: ip,
    subnetId: "subnet-0a1b2c3d4e5f60001",
    vpcId: "vpc-0a1b2c3d4e5f60001",
    availabilityZone: "eu-west-1b",
    mac: `02:00:ac:1f:00:${String(n + 1).padStart(2, "0")}`,
    role: { name: "weft-node", accessKeyId: ROLE_ACCESS_KEY },
    sourceDestCheck: true,
  }));
}

export function testTables(vpcCidr = "172.31.0.0/16"): StandinRouteTable[] {
  const local = () => ({
    destination: vpcCidr,
    instanceId: undefined,
    gatewayId: "local",
    origin: "CreateRouteTable" as const,
  });
  return [
    {
      routeTableId: "rtb-0f0f0f0f0f0f0f0f0",
      vpcId: "vpc-0a1b2c3d4e5f60001",
      main: true,
      subnetIds: [],
      routes: [local()],
    },
    {
      routeTableId: "rtb-0a1b2c3d4e5f60001",
      vpcId: "vpc-0a1b2c3d4e5f60001",
      main: false,
      subnetIds: ["subnet-0a1b2c3d4e5f60001"],
      routes: [
        local(),
        {
          destination: "0.0.0.0/0",
          instanceId: undefined,
          gatewayId: "igw-0123456789abcdef0",
          origin: "CreateRoute",
        },
      ],
    },
  ];
}

export function testOptions(
  addresses: readonly string[],
  extra: Partial<StandinOptions> = {},
): StandinOptions {
  return {
    credentials: new Map([
      [TEST_ACCESS_KEY, TEST_SECRET_KEY],
      [ROLE_ACCESS_KEY, "roleSecretKeyEXAMPLE0000000000000000000"],
    ]),
    instances: testInstances(addresses),
    tables: testTables(),
    ...extra,
  };
}
