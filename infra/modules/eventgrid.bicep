// The custom topic call events are published to. Local (key) auth is disabled: the app publishes
// with its identity's Entra token (EventGrid Data Sender). Subscriptions are the user's to add.

@description('Name of the topic.')
param name string

@description('Region of the topic.')
param location string

@description('Tags put on the topic.')
param tags object

@description('Schema the app publishes in; the topic accepts only this one.')
@allowed([
  'EventGridSchema'
  'CloudEventSchemaV1_0'
])
param inputSchema string

@description('Log Analytics workspace the diagnostic setting sends to.')
param workspaceId string

resource topic 'Microsoft.EventGrid/topics@2025-02-15' = {
  // checkov:skip=CKV_AZURE_193:The app has no virtual network here and publishes over the public endpoint; key auth is disabled, so only Entra identities with EventGrid Data Sender can publish.
  name: name
  location: location
  tags: tags
  // A system-assigned identity, for subscriptions that deliver with a managed identity
  // (Service Bus, Event Hubs, storage queues).
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    inputSchema: inputSchema
    disableLocalAuth: true
    minimumTlsVersionAllowed: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: topic
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output id string = topic.id
output name string = topic.name
output endpoint string = topic.properties.endpoint
