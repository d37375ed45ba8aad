import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseTopic, podForRank, offsetEndpointPort, splitHostPort } from '../../src/events/topic.js';

describe('topics and data-parallel ranks', () => {
  it('parses kv@<pod>@<model>, keeping "@" inside the model name', () => {
    assert.deepEqual(parseTopic('kv@10.0.0.7:8000@Qwen/Qwen3-32B'), { prefix: 'kv', pod: '10.0.0.7:8000', model: 'Qwen/Qwen3-32B' });
    assert.deepEqual(parseTopic('kv@10.0.0.7@org/model@rev-2@x'), { prefix: 'kv', pod: '10.0.0.7', model: 'org/model@rev-2@x' });
    assert.deepEqual(parseTopic('kv@[fd00::1]:8000@m'), { prefix: 'kv', pod: '[fd00::1]:8000', model: 'm' });
    assert.deepEqual(parseTopic('kv@only-pod'), { prefix: '', pod: 'kv@only-pod', model: '' });
    assert.deepEqual(parseTopic(''), { prefix: '', pod: '', model: '' });
  });

  it('maps rank r of ip:port to ip:(port+r); a bare ip keeps its id', () => {
    assert.equal(podForRank('10.0.0.7:8000', 0), '10.0.0.7:8000');
    assert.equal(podForRank('10.0.0.7:8000', null), '10.0.0.7:8000');
    assert.equal(podForRank('10.0.0.7:8000', 3), '10.0.0.7:8003');
    assert.equal(podForRank('[fd00::1]:8000', 1), '[fd00::1]:8001');
    assert.equal(podForRank('10.0.0.7', 2), '10.0.0.7');
    assert.deepEqual(splitHostPort('[fd00::1]:80'), { host: 'fd00::1', port: 80 });
  });

  it("offsets endpoints like vLLM's offset_endpoint_port", () => {
    assert.equal(offsetEndpointPort('tcp://*:5557', 0), 'tcp://*:5557');
    assert.equal(offsetEndpointPort('tcp://*:5557', 3), 'tcp://*:5560');
    assert.equal(offsetEndpointPort('tcp://10.0.0.7:5600', 1), 'tcp://10.0.0.7:5601');
    assert.equal(offsetEndpointPort('inproc://ev', 2), 'inproc://ev_dp2');
    assert.throws(() => offsetEndpointPort('ipc:///tmp/x', 1), /cannot offset/);
  });
});
