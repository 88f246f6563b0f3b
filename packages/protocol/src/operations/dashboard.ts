/**
 * The dashboard's monitors (issue 16): the figures an administrator watches, each counted over
 * the devices of the groups the caller may read, and the layout each administrator chooses
 * (which monitors, in which order). The older summary (devices online, run outcomes,
 * compliance, recent failures) stays in console.ts as getDashboardSummary; its parts are
 * monitors of the layout too.
 *
 * Days are UTC days. Every count says what list it comes from, so that a console can link it
 * to that list: detections are events whose kind ends in `.detection` (a product's device
 * events, `<product>.detection`), devices not seen are those whose last contact is older than
 * N days or who never made contact (the device list's `notSeenForDays`), versions are the
 * device list's `agentVersion` and `osName` values.
 */
import { Type, type Static } from 'typebox';
import { operation } from '../contract.ts';

/** Every monitor a layout may show, in the default order. */
export const DASHBOARD_MONITORS = ['devices', 'runOutcomes', 'detections', 'notSeen', 'agentVersions', 'osVersions', 'runTrend', 'detectionTrend', 'enrolmentTrend', 'compliance', 'recentFailures'] as const;
export type DashboardMonitorId = (typeof DASHBOARD_MONITORS)[number];
export const DashboardMonitorId = Type.Enum([...DASHBOARD_MONITORS]);
/** What each monitor shows (the console's "Customize" dialog lists them by these names). */
export const DASHBOARD_MONITOR_LABELS: Record<DashboardMonitorId, string> = {
  devices: 'Devices online and offline',
  runOutcomes: 'Task outcomes, last 24 hours',
  detections: 'Detections',
  notSeen: 'Devices not seen',
  agentVersions: 'Agent versions',
  osVersions: 'Operating systems',
  runTrend: 'Trend: task runs per day',
  detectionTrend: 'Trend: detections per day',
  enrolmentTrend: 'Trend: devices enrolled per day',
  compliance: 'Deployment compliance',
  recentFailures: 'Recent failures',
};
/** How many monitors a layout may name (each at most once). */
export const DASHBOARD_LAYOUT_MAX = DASHBOARD_MONITORS.length;

export const DashboardLayout = Type.Object(
  {
    /** The monitors shown, in order. */
    monitors: Type.Array(DashboardMonitorId),
    /** False while the administrator has not chosen: the default layout. */
    custom: Type.Boolean(),
    updatedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { additionalProperties: false },
);
export type DashboardLayout = Static<typeof DashboardLayout>;
/** A layout to save: monitor ids, each once, in the order shown (unknown ids and duplicates are DASHBOARD_LAYOUT_INVALID). */
export const DashboardLayoutPut = Type.Object(
  { monitors: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 100, description: 'Monitor ids in the order shown: ' + DASHBOARD_MONITORS.join(', ') }) },
  { additionalProperties: false },
);
export type DashboardLayoutPut = Static<typeof DashboardLayoutPut>;

export const getDashboardLayout = operation({
  id: 'getDashboardLayout',
  method: 'GET',
  path: '/dashboard/layout',
  tag: 'console',
  summary: "The caller's dashboard layout: the monitors shown, in order (the default one until they choose)",
  response: DashboardLayout,
});
export const putDashboardLayout = operation({
  id: 'putDashboardLayout',
  method: 'PUT',
  path: '/dashboard/layout',
  tag: 'console',
  summary: "Choose and order the caller's dashboard monitors (an empty list shows none; DELETE goes back to the default)",
  body: DashboardLayoutPut,
  response: DashboardLayout,
  errors: ['DASHBOARD_LAYOUT_INVALID'],
});
export const resetDashboardLayout = operation({
  id: 'resetDashboardLayout',
  method: 'DELETE',
  path: '/dashboard/layout',
  tag: 'console',
  summary: "Go back to the default dashboard layout",
  response: DashboardLayout,
});

// --- Monitors --------------------------------------------------------------------------------

/** The "not seen for N days" buckets every answer carries besides the N asked for. */
export const NOT_SEEN_BUCKETS = [1, 7, 30] as const;
export const DASHBOARD_TOP_DEFAULT = 8;

const Count = Type.Integer({ minimum: 0 });
export const ValueCount = Type.Object({ value: Type.String(), count: Count }, { additionalProperties: false });
export type ValueCount = Static<typeof ValueCount>;
/** Counts per value: the `top` most common, then the rest summed in `other` (`otherValues` of them). */
export const ValueCounts = Type.Object({ total: Count, top: Type.Array(ValueCount), other: Count, otherValues: Count }, { additionalProperties: false });
export type ValueCounts = Static<typeof ValueCounts>;

export const DashboardMonitorsQuery = Type.Object(
  {
    notSeenDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 365, description: 'The N of "not seen for N days" (default 7); the 1, 7 and 30 day buckets are always given' })),
    top: Type.Optional(Type.Integer({ minimum: 1, maximum: 50, description: `How many agent and OS versions to name before "other" (default ${DASHBOARD_TOP_DEFAULT})` })),
  },
  { additionalProperties: false },
);
export type DashboardMonitorsQuery = Static<typeof DashboardMonitorsQuery>;
export const DashboardMonitors = Type.Object(
  {
    /** When the figures were counted. */
    at: Type.String({ format: 'date-time' }),
    /** Devices the caller may see. */
    devices: Count,
    /** Detection events (kind `*.detection`) of the last 24 hours, 7 and 30 days. */
    detections: Type.Object({ last24h: Count, last7d: Count, last30d: Count }, { additionalProperties: false }),
    /** Devices whose last contact is older than `days` days, or who never made contact; and the same for 1, 7 and 30 days. */
    notSeen: Type.Object({ days: Type.Integer({ minimum: 1 }), count: Count, buckets: Type.Array(Type.Object({ days: Type.Integer({ minimum: 1 }), count: Count }, { additionalProperties: false })) }, { additionalProperties: false }),
    agentVersions: ValueCounts,
    /** By OS name (the device list's `osName` filter). */
    osVersions: ValueCounts,
  },
  { additionalProperties: false },
);
export type DashboardMonitors = Static<typeof DashboardMonitors>;
export const getDashboardMonitors = operation({
  id: 'getDashboardMonitors',
  method: 'GET',
  path: '/dashboard/monitors',
  tag: 'console',
  summary: 'The dashboard monitors over the devices the caller may see: detections, devices not seen for N days, agent and OS versions',
  query: DashboardMonitorsQuery,
  response: DashboardMonitors,
});

// --- Trends ----------------------------------------------------------------------------------

export const DASHBOARD_TREND_DAYS = [7, 30] as const;
export const DashboardTrendQuery = Type.Object(
  { days: Type.Optional(Type.Union([Type.Literal(7), Type.Literal(30)], { description: 'The period: 7 or 30 UTC days, today included (default 7)' })) },
  { additionalProperties: false },
);
export type DashboardTrendQuery = Static<typeof DashboardTrendQuery>;
export const DashboardTrendDay = Type.Object(
  {
    /** The UTC day, YYYY-MM-DD; it runs from `since` (included) to `until` (excluded). */
    date: Type.String(),
    since: Type.String({ format: 'date-time' }),
    until: Type.String({ format: 'date-time' }),
    /** Runs that ended that day succeeded (with or without warnings). */
    succeeded: Count,
    /** Runs that ended that day failed or timed out. */
    failed: Count,
    /** Detection events of that day. */
    detections: Count,
    /** Devices enrolled that day (that still exist). */
    enrolled: Count,
  },
  { additionalProperties: false },
);
export type DashboardTrendDay = Static<typeof DashboardTrendDay>;
export const DashboardTrend = Type.Object({ days: Type.Integer(), since: Type.String({ format: 'date-time' }), until: Type.String({ format: 'date-time' }), points: Type.Array(DashboardTrendDay) }, { additionalProperties: false });
export type DashboardTrend = Static<typeof DashboardTrend>;
export const getDashboardTrend = operation({
  id: 'getDashboardTrend',
  method: 'GET',
  path: '/dashboard/trend',
  tag: 'console',
  summary: 'Per UTC day over 7 or 30 days: runs succeeded and failed, detections, devices enrolled (over the devices the caller may see)',
  query: DashboardTrendQuery,
  response: DashboardTrend,
});
