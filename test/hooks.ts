/** Root hooks: every server a test started is stopped once the run ends. */
import { stopAllServers } from '../engine/local/cluster';

export const mochaHooks = {
  async afterAll(): Promise<void> {
    await stopAllServers();
  },
};
