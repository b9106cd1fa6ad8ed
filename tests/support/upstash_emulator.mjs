// Runs @humanwhocodes/upstash-redis-server bound to 127.0.0.1 only (its own CLI listens on all
// interfaces). Env: URS_MODULES (node_modules dir), URS_TOKEN, PORT, REDIS_URL.
import path from "node:path";
import { pathToFileURL } from "node:url";

const root = process.env.URS_MODULES;
const load = (rel) => import(pathToFileURL(path.join(root, rel)).href);
const { createApp } = await load("@humanwhocodes/upstash-redis-server/dist/index.js");
const { serve } = await load("@hono/node-server/dist/index.mjs");

const app = createApp({ token: process.env.URS_TOKEN, redisUrl: process.env.REDIS_URL });
serve({ fetch: app.fetch, port: Number(process.env.PORT), hostname: "127.0.0.1" });
