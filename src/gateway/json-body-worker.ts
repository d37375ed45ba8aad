// The request-body parse thread (see json-body.ts).
import { serveJobs } from '../util/serial-worker.js';
import { decodeJsonBody, jobErrorOf, type JsonBodyJob } from './json-body.js';

serveJobs<JsonBodyJob, unknown>(decodeJsonBody, jobErrorOf);
