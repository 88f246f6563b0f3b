/** Push installation (ADR 0021 for the shape of an operation): start a job over SSH, follow it, cancel it. */
import { operation, Page } from '../contract.ts';
import { PushInstallCreate, PushInstallListQuery, PushJobView } from '../push.ts';
import { IdParams } from './common.ts';

export const startPushInstall = operation({
  id: 'startPushInstall',
  method: 'POST',
  path: '/push-installs',
  tag: 'push',
  summary: 'Start a push installation: connect to each host over SSH, check it, install the agent and enrol it into the group. Answers with the job as it starts; follow it with getPushInstall. The credentials (password, or private key and passphrase) are used for this job only and never stored or shown.',
  body: PushInstallCreate,
  status: 202,
  response: PushJobView,
  errors: ['HOSTS_INVALID', 'CREDENTIALS_INVALID'],
});
export const listPushInstalls = operation({
  id: 'listPushInstalls',
  method: 'GET',
  path: '/push-installs',
  tag: 'push',
  summary: 'Push installations, newest first, with a summary of their hosts (not the hosts themselves: getPushInstall has them)',
  query: PushInstallListQuery,
  response: Page(PushJobView),
});
export const getPushInstall = operation({
  id: 'getPushInstall',
  method: 'GET',
  path: '/push-installs/{id}',
  tag: 'push',
  summary: "A push installation with each host's state, steps, outcome, exit code and output tail (every host: a job has at most 4,096)",
  params: IdParams,
  response: PushJobView,
});
export const cancelPushInstall = operation({
  id: 'cancelPushInstall',
  method: 'POST',
  path: '/push-installs/{id}/cancel',
  tag: 'push',
  summary: 'Cancel a running push installation: pending hosts are not started, running ones are disconnected',
  params: IdParams,
  response: PushJobView,
});
