"""An independent Kafka client (kafka-python) for Eddy's tests.

  consume BROKERS TOPIC COUNT      print COUNT records as JSON lines
                                   {partition, offset, key, headers, value}
  produce BROKERS TOPIC CODEC      send stdin's lines as records with CODEC
                                   (none, gzip, snappy, lz4, zstd); with
                                   CODEC hex, each line is hex-encoded
                                   binary (sent uncompressed); with CODEC
                                   single, one record per batch
  partitions PARTITIONS KEY...     print the Java client's murmur2 partition
                                   of each key, one per line
"""
import json
import sys

from kafka import KafkaConsumer, KafkaProducer
from kafka.partitioner.default import murmur2


def consume(brokers, topic, count):
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=brokers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=30000,
    )
    seen = 0
    for record in consumer:
        print(json.dumps({
            "partition": record.partition,
            "offset": record.offset,
            "key": record.key.decode() if record.key is not None else None,
            "headers": {k: v.decode() for k, v in record.headers},
            "value": record.value.decode(),
        }))
        seen += 1
        if seen >= count:
            break
    consumer.close()
    if seen < count:
        sys.exit(f"only {seen} of {count} records arrived")


def produce(brokers, topic, codec):
    producer = KafkaProducer(
        bootstrap_servers=brokers,
        compression_type=None if codec in ("none", "hex", "single") else codec,
        # 0 disables batching: the test broker cannot start a fetch
        # inside a batch, which resuming at a stored offset needs.
        batch_size=0 if codec == "single" else 16384,
    )
    for line in sys.stdin.buffer:
        line = line.rstrip(b"\n")
        producer.send(topic, bytes.fromhex(line.decode()) if codec == "hex" else line)
    producer.flush()
    producer.close()


def partitions(count, keys):
    for key in keys:
        # The Java client: toPositive(murmur2(keyBytes)) % numPartitions.
        print((murmur2(key.encode()) & 0x7FFFFFFF) % count)


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "consume":
        consume(args[0], args[1], int(args[2]))
    elif command == "produce":
        produce(args[0], args[1], args[2])
    elif command == "partitions":
        partitions(int(args[0]), args[1:])
    else:
        sys.exit(f"unknown command {command}")
