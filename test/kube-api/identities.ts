/** The users the test API server knows by default: an admin, and weft's service account (the "flannel" role). */
export const DEFAULT_ADMIN_TOKEN = "weft-test-admin-token";
export const DEFAULT_WEFT_TOKEN = "weft-test-flannel-token";
export const ADMIN_USER = "kubernetes-admin";
export const WEFT_USER = "system:serviceaccount:kube-flannel:flannel";
