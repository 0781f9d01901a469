"""A local Event Grid custom topic: publish with azure-eventgrid, deliver to webhooks and Event Grid-triggered functions."""

from .publishing import CLOUD_EVENTS_SCHEMA, EVENT_GRID_SCHEMA
from .topic import TOPIC_PATH, EventGridTopic, TopicThread

__all__ = ["CLOUD_EVENTS_SCHEMA", "EVENT_GRID_SCHEMA", "TOPIC_PATH", "EventGridTopic", "TopicThread"]
