"""A private, single-node Kafka broker (KRaft) that a test may kill and restart.

The shared broker on 127.0.0.1:29092 serves every engineer's tests and must never be stopped, so
fault scenarios (Kafka down, the broker killed mid-run) run against this one: the same Apache Kafka
jars ``infra/services.sh`` fetched (``infra/kafka/libs``), its own ports (39092 and 39093 unless
told otherwise) and its own data folder, started and stopped by process id only.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[2]
LIBS = ROOT / "infra" / "kafka" / "libs"

_LOG4J = """status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
"""


def jars_present() -> bool:
    return any(LIBS.glob("kafka_2.13-*.jar"))


def cluster_id(draw: Callable[[], uuid.UUID] = uuid.uuid4) -> str:
    """A KRaft cluster id as Kafka's ``Uuid.randomUuid`` makes one: 16 random bytes in URL-safe
    base64 without padding, drawn again while the text starts with '-'. The storage tool's argument
    parser takes such an id for an option ("argument --cluster-id/-t: expected one argument"): one
    id in 64, and it failed a make chaos run."""
    while True:
        text = base64.urlsafe_b64encode(draw().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


class PrivateKafka:
    """One broker in ``folder``; :meth:`start` formats it once, :meth:`kill` is SIGKILL (data kept)."""

    def __init__(self, folder: Path, port: int = 39092, controller_port: int = 39093) -> None:
        self.folder = folder
        self.port = port
        self.controller_port = controller_port
        self.bootstrap = f"127.0.0.1:{port}"
        self.log = folder / "broker.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._java = [
            "java",
            "-Xms128m",
            "-Xmx384m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile=file:{folder / 'log4j2.properties'}",
            "-cp",
            f"{LIBS}/*",
        ]

    def _configure(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "log4j2.properties").write_text(_LOG4J)
        props = self.folder / "server.properties"
        if props.exists():
            return props
        data = self.folder / "data"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    "inter.broker.listener.name=PLAINTEXT",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={data}",
                    "num.network.threads=2",
                    "num.io.threads=2",
                    "auto.create.topics.enable=false",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "",
                ]
            )
        )
        with self.log.open("ab") as log:
            formatted = subprocess.run(
                [*self._java, "kafka.tools.StorageTool", "format", "-t", cluster_id(), "-c", str(props)],
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
            )
        if formatted.returncode != 0:
            tail = self.log.read_text(errors="replace").splitlines()[-10:]
            failed = f"private broker: StorageTool format failed ({formatted.returncode}):"
            raise RuntimeError("\n".join([failed, *tail]))
        return props

    def start(self, timeout: float = 90) -> float:
        """Start (formatting the first time) and wait until a produce is acknowledged; returns seconds."""
        started = time.monotonic()
        props = self._configure()
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [*self._java, "kafka.Kafka", str(props)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready(started + timeout)
        return time.monotonic() - started

    def _wait_ready(self, deadline: float) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        last = "no answer"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"private broker exited ({self._proc.returncode}); see {self.log}")
            try:
                meta = admin.list_topics(timeout=2)
                leaderless = [
                    f"{name}[{p}]"
                    for name, topic in meta.topics.items()
                    for p, part in topic.partitions.items()
                    if part.leader != 1
                ]
                # After a restart the partitions get their leader back one by one, and a leader
                # answers for its partition only once its log is loaded: ask each for its offsets.
                if 1 in meta.brokers and not leaderless and self._offsets_served(meta):
                    return
                last = f"partitions without a leader or not serving: {leaderless[:5]}"
            except Exception as exc:  # KafkaException while the broker starts
                last = str(exc)
            time.sleep(0.25)
        raise TimeoutError(f"private broker {self.bootstrap} not ready: {last}; see {self.log}")

    def _offsets_served(self, meta: Any) -> bool:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "private-kafka-ready", "log_level": 0})
        try:
            for name, topic in meta.topics.items():
                for p in topic.partitions:
                    consumer.get_watermark_offsets(TopicPartition(name, p), timeout=5)
            return True
        except KafkaException:
            return False
        finally:
            consumer.close()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def kill(self) -> None:
        """SIGKILL the broker (no clean shutdown), keeping its data for a restart."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.wait(30)
        self._proc = None

    def create_topics(self, names: dict[str, int]) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        new = [NewTopic(name, num_partitions=n, replication_factor=1) for name, n in names.items()]
        for fut in admin.create_topics(new).values():
            fut.result(30)

    def delete_topics(self, names: list[str]) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for fut in admin.delete_topics(names).values():
            fut.result(30)
        deadline = time.monotonic() + 30
        while set(names) & set(admin.list_topics(timeout=10).topics):
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics {names} still listed 30 s after deletion")
            time.sleep(0.2)

    def produce(self, topic: str, key: bytes | None, value: bytes) -> None:
        """One record, acknowledged before returning."""
        producer = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True})
        producer.produce(topic, value, key)
        if producer.flush(30):
            raise RuntimeError(f"private broker did not acknowledge a record on {topic}")
