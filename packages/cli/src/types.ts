/** The API's answer shapes come from the protocol package; these names are the CLI's. */
export type {
  Me,
  GroupView,
  DeviceView,
  DeviceSummary as DeviceFacts,
  EnrolmentTokenView,
  EventView as StoredEvent,
  SecretMeta,
  RunNowResult,
  ServerSettings,
  AdminView,
  AdminCreate,
  AdminUpdate,
  RoleView,
  RoleCreate,
  RoleUpdate,
  GrantInput,
  GrantView,
  ApiTokenView,
  Permission,
} from '@garrison/protocol';

export type { PermissionInfo, TotpSetup, DeviceDuplicateView, RefusalCounts } from '@garrison/protocol';
