// The Flex Consumption plan and the Function App (Python 3.11) running as the user-assigned
// identity, with every app setting the app reads. No setting holds a key: storage, Event Grid
// and Application Insights are reached with Entra tokens, and the four signing keys are Key
// Vault references resolved with the same identity.

@description('Name of the Function App; the endpoint is https://<name>.azurewebsites.net/.')
@minLength(2)
@maxLength(60)
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Region of the plan and the app.')
param location string

@description('Tags put on the plan and the app.')
param tags object

@description('azd service name (azure.yaml) the app is tagged with, so azd deploy finds it.')
param serviceName string

@description('Memory of each instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('Most instances the app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

param identityId string
param identityClientId string
param storageAccountName string
param tableEndpoint string
param deploymentContainerUrl string
param appInsightsConnectionString string
param workspaceId string

param eventGridEndpoint string
@allowed([
  'EventGridSchema'
  'CloudEventSchemaV1_0'
])
param eventGridSchema string
param armResourceId string

@minLength(36)
@maxLength(36)
param anteroomResourceId string
param tablePrefix string
param publicHosts string
param pstnCallerNumbers string
param pstnGatewayUrl string

param accessKeyUri string
param secondaryAccessKeyUri string
param tokenSigningKeyUri string
param callbackSigningKeyUri string

// Settings the app and the Functions host read (README, Settings). ANTEROOM_EVENTGRID_KEY and
// ANTEROOM_STORAGE_CONNECTION_STRING are deliberately absent: both services use Entra auth.
var appSettings = {
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  AZURE_CLIENT_ID: identityClientId
  ANTEROOM_STORAGE_ACCOUNT_URL: tableEndpoint
  ANTEROOM_TABLE_PREFIX: tablePrefix
  ANTEROOM_EVENTGRID_ENDPOINT: eventGridEndpoint
  ANTEROOM_EVENTGRID_SCHEMA: eventGridSchema
  ANTEROOM_ARM_RESOURCE_ID: armResourceId
  ANTEROOM_RESOURCE_ID: anteroomResourceId
  ANTEROOM_PUBLIC_HOSTS: publicHosts
  ANTEROOM_PSTN_CALLER_NUMBERS: pstnCallerNumbers
  ANTEROOM_PSTN_GATEWAY_URL: pstnGatewayUrl
  ANTEROOM_ACCESS_KEY: '@Microsoft.KeyVault(SecretUri=${accessKeyUri})'
  ANTEROOM_SECONDARY_ACCESS_KEY: '@Microsoft.KeyVault(SecretUri=${secondaryAccessKeyUri})'
  ANTEROOM_TOKEN_SIGNING_KEY: '@Microsoft.KeyVault(SecretUri=${tokenSigningKeyUri})'
  ANTEROOM_CALLBACK_SIGNING_KEY: '@Microsoft.KeyVault(SecretUri=${callbackSigningKeyUri})'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:Zone redundancy is not offered in every Flex Consumption region; this template aims at the lowest idle cost. Set zoneRedundant on the plan where the region has it.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222:A public API, like the ACS endpoint it stands in for; every request is authenticated by the app (HMAC keys, access tokens).
  // checkov:skip=CKV_AZURE_17:Clients are the official ACS SDKs, which authenticate with HMAC signatures and tokens, never TLS client certificates.
  // checkov:skip=CKV_AZURE_212:Flex Consumption adds and replaces instances on demand; there is no fixed instance count to set for failover.
  // checkov:skip=CKV_AZURE_213:Flex Consumption manages its instances itself; a health-check path would be billed requests on a scale-to-zero app with no health route.
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    // Key Vault references resolve as the user-assigned identity, not a system-assigned one.
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [for setting in items(appSettings): {
        name: setting.key
        value: setting.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// azd deploys with an Entra token; FTP and SCM basic-auth publishing stay off.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: app
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'FunctionAppLogs'
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

output name string = app.name
output endpoint string = 'https://${app.properties.defaultHostName}/'
